"""How a command shows warnings: a security warning as one loud line for the
operator; pydicom's remarks on the data sets it reads (received ones included,
which a peer chooses) only in the debug log, so that a peer sending malformed
objects cannot fill the console of ``dicomnet serve``."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pydicom
import pytest

from dicomnet.cli.common import cli_session
from dicomnet.cli.output import in_cli_words
from dicomnet.security.profiles import SecurityWarning

PYDICOM_FILE = str(Path(pydicom.__file__).parent / "valuerep.py")


def _warn_both() -> None:
    warnings.warn_explicit("Invalid value for VR UI: '1.2.x'", UserWarning, PYDICOM_FILE, 440)
    warnings.warn("the 'aes' profile is retired and weak", SecurityWarning, stacklevel=2)
    warnings.warn_explicit("something else", UserWarning, __file__, 1)


@pytest.mark.parametrize("verbose", [0, 2])
def test_pydicom_remarks_go_to_the_debug_log_security_warnings_to_the_operator(
        capsys: pytest.CaptureFixture[str], verbose: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # as outside pytest (filterwarnings = error)
        with cli_session(verbose):
            _warn_both()
    err = capsys.readouterr().err
    label = "WARNING dicomnet.security:" if verbose >= 2 else "WARNING:"
    assert f"{label} the 'aes' profile is retired and weak" in err
    label = "WARNING py.warnings:" if verbose >= 2 else "WARNING:"
    assert f"{label} something else" in err  # other warnings too
    assert "WARNING: Invalid value" not in err
    if verbose >= 2:
        assert "DEBUG dicomnet.storage: pydicom: Invalid value for VR UI: '1.2.x'" in err
    else:
        assert "Invalid value" not in err


@pytest.mark.parametrize(("verbose", "dated", "line"), [
    # As the log lines around them: the time (a server's with its date), then the label.
    (0, False, r"\d\d:\d\d:\d\d WARNING: the 'aes' profile is retired and weak"),
    (0, True, r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4} WARNING: the 'aes' profile is "
              r"retired and weak"),
    (2, False, r"\d\d:\d\d:\d\d WARNING dicomnet\.security: the 'aes' profile is retired "
               r"and weak"),
])
def test_a_security_warning_is_a_log_line_like_the_others(
        capsys: pytest.CaptureFixture[str], verbose: int, dated: bool, line: str) -> None:
    """A SecurityWarning (a retired profile, verification off) came without the
    time every other line of ``dicomnet serve`` has, so a log read later could not
    tell when it was said (a certificate rotation warns too)."""
    with cli_session(verbose, dated=dated):
        warnings.warn("the 'aes' profile is retired and weak", SecurityWarning, stacklevel=1)
    err = capsys.readouterr().err
    assert re.fullmatch(line + "\n", err), err


_LIBRARY_FIELDS = re.compile(r"\b(cafile|capath|crlfiles|certfile|keyfile|verify_peer|"
                             r"peer_certificate=)")


def test_the_library_s_reasons_name_the_cli_s_flags() -> None:
    """A verification failure told a ``dicomnet`` user that the server's CA "is not
    in our cafile/capath", a stale CRL to "refresh crlfiles", --no-verify that
    "verify_peer=False": TLSConfig's fields, which no flag is called. Every reason
    the TLS layer gives names the flag instead."""
    from dicomnet.security import errors_map

    reasons = [*errors_map._VERIFY_REASONS.values(), *errors_map._ALERT_REASONS.values(),
               "TLS server certificate verification is OFF (verify_peer=False): anyone can "
               "impersonate the server",
               "cafile pki/client.key holds no PEM certificate (BEGIN CERTIFICATE): give the "
               "CA's certificate in PEM",
               "capath pki holds no CA certificates: no hashed names",
               "the server closed the connection right after the TLS handshake, before "
               "associating: it may require a client certificate (we sent none: set "
               "certfile/keyfile), or be busy or shutting down",
               "the client presented no certificate, but this server requires one "
               "(peer_certificate='required')"]
    for reason in reasons:
        assert not _LIBRARY_FIELDS.search(in_cli_words(reason)), in_cli_words(reason)
    assert in_cli_words(errors_map._VERIFY_REASONS[19]).endswith(
        "self-signed root that is not in --ca)")
    assert in_cli_words(errors_map._VERIFY_REASONS[3]) == (
        "no CRL for the CA of {who} (--crl must hold a CRL from every CA checked)")
