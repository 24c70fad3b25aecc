"""What every dicomnet command shares: network/TLS options, logging, JSON, exit codes.

Exit codes (documented in every command's epilog):
0 success; 1 the peer answered with a failure status, or objects were not
stored; 2 usage or configuration error; 3 association, TLS or network failure;
130 interrupted (Ctrl-C); 143 terminated (SIGTERM). ``serve`` exits 0 when
Ctrl-C or SIGTERM stops it (SERVE_EXIT_CODES_EPILOG). They live in
:mod:`dicomnet.cli.exits`, with what a signal does to a run.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import shutil
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar

import click
import click.termui

from dicomnet.cli import exits
from dicomnet.cli.exits import (
    CERTS_EXIT_CODES_EPILOG,
    EXIT_CODES_EPILOG,
    EXIT_FAILURE_STATUS,
    EXIT_INTERRUPTED,
    EXIT_NETWORK,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    REINDEX_EXIT_CODES_EPILOG,
    SERVE_EXIT_CODES_EPILOG,
    interruption,
)
from dicomnet.cli.output import (
    cli_session,
    fail,
    in_cli_words,
    print_json,
    printable,
    say_error,
)
from dicomnet.config import DEFAULT_PLAIN_PORT, DEFAULT_TLS_PORT, Timeouts
from dicomnet.errors import ConfigurationError, DicomNetError
from dicomnet.security.profiles import DEFAULT_PROFILE, PROFILES

if TYPE_CHECKING:
    # Imported where used: ``dicomnet certs`` and the commands' --help need neither
    # the event loop nor the TLS context builder (asyncio, ssl: ~40 ms a run).
    import asyncio

    from dicomnet.security.config import TLSConfig

__all__ = [
    "printable",
    "CERTS_EXIT_CODES_EPILOG",
    "EXIT_CODES_EPILOG",
    "EXIT_FAILURE_STATUS",
    "EXIT_INTERRUPTED",
    "EXIT_NETWORK",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "REINDEX_EXIT_CODES_EPILOG",
    "SERVE_EXIT_CODES_EPILOG",
    "NetworkOptions",
    "OnExit",
    "cli_session",
    "command_tls_config",
    "command_name",
    "fail",
    "is_interruption",
    "network_options",
    "print_json",
    "run_async",
    "say_error",
]

Role = Literal["client", "server"]
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

_TLS_ONLY_OPTIONS = ("cert", "key", "ca", "crl", "profile", "ciphers", "server_name",
                     "no_verify", "hostname_from_cn", "allow_ca_peer_cert")


@dataclass(frozen=True, slots=True)
class NetworkOptions:
    """The common flags of a network command, as parsed."""

    role: Role
    aet: str
    called_aet: str
    tls: bool
    cert: Path | None
    key: Path | None
    ca: Path | None
    crl: tuple[Path, ...]
    profile: str
    peer_cert: Literal["required", "optional", "none"]
    no_verify: bool
    server_name: str | None
    ciphers: tuple[str, ...] | None
    key_password_env: str | None
    key_password_file: Path | None
    json: bool
    verbose: int
    timeout: float | None
    hostname_from_cn: bool = False
    allow_ca_peer_cert: bool = False

    def default_port(self) -> int:
        """The registered port for the chosen mode: IANA's "dicom-tls", 2762, for TLS
        (PS3.15 Annex B, the profile --profile names), else "dicom", 11112."""
        return DEFAULT_TLS_PORT if self.tls else DEFAULT_PLAIN_PORT

    def timeouts(self) -> Timeouts | None:
        """One --timeout bounds every wait for the peer, in both roles: connect,
        TLS handshake, ARTIM (PS3.8 9.1.5: a server awaiting the A-ASSOCIATE-RQ;
        either side awaiting the close after a release or abort), ACSE, DIMSE (a
        response, or the peer taking what we send) and the rest of a PDU once it
        has started. Someone who asks for 5 s expects no wait of the PDU
        default's 120 s. Two deadlines keep their own values: ``idle``, which
        for a client is time of its own between requests (store reading or
        converting the next file) and for a server the wait for a next request
        (``serve --idle-timeout``: more for a modality that keeps an
        association open between studies); and ``operation``, the server's own
        work (``serve --operation-timeout``), no wait for the peer."""
        if self.timeout is None:
            return None
        t = self.timeout
        return Timeouts(connect=t, tls_handshake=t, artim=t, acse=t, dimse=t, pdu=t)

    def tls_config(self) -> TLSConfig | None:
        """The TLSConfig these flags describe, or None for plain DICOM.

        Raises click.UsageError for inconsistent flags, with the flag names to fix,
        and ConfigurationError for an encrypted key whose password cannot be had
        (:func:`command_tls_config` says it as a wrong password is said).
        """
        if not self.tls:
            return None
        if self.role == "server" and self.cert is None:
            raise click.UsageError(
                "a TLS server needs its certificate and key: give --cert FILE and --key FILE "
                "(make a development PKI with 'dicomnet certs init DIR')"
            )
        if self.key is not None and self.cert is None:
            raise click.UsageError("--key needs --cert (the certificate of that key)")
        if (
            self.role == "server"
            and self.peer_cert != "none"
            and self.ca is None
        ):
            raise click.UsageError(
                f"--peer-cert {self.peer_cert} needs --ca (the CA certificates whose client "
                "certificates this server accepts), or use --peer-cert none"
            )
        from dicomnet.security.config import TLSConfig

        cafile = capath = None
        if self.ca is not None:
            if self.ca.is_dir():
                capath = self.ca
            else:
                cafile = self.ca
        password, callback = self._key_password()
        try:
            return TLSConfig(
                certfile=self.cert,
                keyfile=self.key,
                cafile=cafile,
                capath=capath,
                crlfiles=self.crl,
                peer_certificate=self.peer_cert,
                verify_peer=not self.no_verify,
                check_hostname=not self.no_verify,
                hostname_from_common_name=self.hostname_from_cn,
                allow_ca_peer_certificate=self.allow_ca_peer_cert,
                server_hostname=self.server_name,
                profile=self.profile,
                ciphers=self.ciphers,
                key_password=password,
                on_private_key_password=callback,
            )
        except ConfigurationError as exc:
            raise click.UsageError(str(exc)) from None

    def _key_password(self) -> tuple[str | None, Callable[[], str] | None]:
        if self.key_password_env is not None:
            value = os.environ.get(self.key_password_env)
            if value is None:
                raise ConfigurationError(
                    f"--key-password-env {self.key_password_env}: that environment variable "
                    "is not set"
                )
            return value, None
        if self.key_password_file is not None:
            path = self.key_password_file
            _first_line(path)  # a file that cannot be read: said now, before the loop
            # Read again at each context build: a server whose key is rotated opens
            # the new one with what the file says then.
            return None, lambda: _first_line(path)
        key = self.key or self.cert  # a key may sit in the certificate's PEM file
        if key is None or not key.is_file():
            return None, None  # the library reports the missing file itself
        from dicomnet.security.pem import key_is_encrypted

        try:
            encrypted = key_is_encrypted(key.read_bytes())
        except OSError:
            return None, None
        if not encrypted:
            return None, None
        if not _stdin_is_tty():
            raise ConfigurationError(
                f"private key {key} is encrypted and no terminal is there to ask its "
                "password: give --key-password-env VAR or --key-password-file FILE"
            )

        # Asked now, before the event loop runs: a prompt inside asyncio.run took
        # three Ctrl-C to leave (its handler only cancels the main task, which the
        # blocked prompt never sees) and then said "Aborted!", exit 1.
        return prompt_password(f"Password for {key}"), None


def _first_line(path: Path, option: str = "--key-password-file") -> str:
    """The password in a --key-password-file (``certs``: ``option``, --password-file):
    its first line (editors and ``echo`` add a newline that is not the password)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read {option} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(
            f"cannot read {option} {path}: it is not UTF-8 text") from None
    return lines[0] if lines else ""


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()


def prompt_password(text: str, *, confirm: bool = False) -> str:
    """Ask for a password on the terminal, the prompt on stderr, the input hidden.

    Ctrl-C raises KeyboardInterrupt, which the command group turns into
    "interrupted" and exit 130; Ctrl-D (end of input) is a usage error (exit 2).
    ``click.prompt`` turns both into "Aborted!" and exit 1, which here means a
    peer's failure status. ``confirm`` asks twice, until both agree."""
    # click's own hidden input (getpass on a terminal; what CliRunner feeds in tests)
    read = click.termui.hidden_prompt_func
    while True:
        click.echo(f"{text}: ", nl=False, err=True)
        try:
            value = read("")
            if not value:
                continue  # as click.prompt: an empty answer asks again
            if not confirm:
                return value
            click.echo("Repeat for confirmation: ", nl=False, err=True)
            again = read("")
        except EOFError:
            click.echo(err=True)
            raise click.UsageError("no password given (end of input)") from None
        except KeyboardInterrupt:
            click.echo(err=True)  # the shell's prompt on a line of its own
            raise
        if value == again:
            return value
        click.echo("the two passwords differ: again", err=True)


def _split_ciphers(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if not names:
        raise click.BadParameter("give at least one cipher suite name")
    return names


def network_options(role: Role, *, port_required: bool = False) -> Callable[[F], F]:
    """Add the common network and TLS flags; the command receives ``net: NetworkOptions``.
    ``port_required``: the command has no default port (its help says so)."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            ctx = click.get_current_context()
            tls_flag: bool | None = kwargs.pop("tls")
            values = {name: kwargs.pop(name, None) for name in (
                "aet", "called_aet", "cert", "key", "ca", "crl", "profile", "peer_cert",
                "no_verify", "hostname_from_cn", "allow_ca_peer_cert",
                "server_name", "ciphers", "key_password_env", "key_password_file", "json",
                "verbose", "timeout",
            )}
            explicit = [
                name for name in _TLS_ONLY_OPTIONS
                if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
            ]
            if tls_flag is False and explicit:
                raise click.UsageError(
                    f"--{explicit[0].replace('_', '-')} is a TLS option but --no-tls was given"
                )
            # TLS options say what the user wants: they imply --tls.
            use_tls = bool(tls_flag) or (tls_flag is None and bool(explicit))
            if values["key_password_env"] and values["key_password_file"]:
                raise click.UsageError(
                    "give --key-password-env or --key-password-file, not both"
                )
            kwargs["net"] = NetworkOptions(
                role=role,
                aet=values["aet"],
                called_aet=values["called_aet"] or "ANY-SCP",
                tls=use_tls,
                cert=values["cert"],
                key=values["key"],
                ca=values["ca"],
                crl=tuple(values["crl"] or ()),
                profile=values["profile"],
                peer_cert=values["peer_cert"] or "required",
                no_verify=bool(values["no_verify"]),
                server_name=values["server_name"],
                hostname_from_cn=bool(values["hostname_from_cn"]),
                allow_ca_peer_cert=bool(values["allow_ca_peer_cert"]),
                ciphers=values["ciphers"],
                key_password_env=values["key_password_env"],
                key_password_file=values["key_password_file"],
                json=bool(values["json"]),
                verbose=int(values["verbose"] or 0),
                timeout=values["timeout"],
            )
            return func(*args, **kwargs)

        options: list[Callable[[Any], Any]] = [
            click.option("--aet", default="DICOMNET", show_default=True, metavar="AET",
                         help="Our AE title" + (" (the one clients call)." if role == "server"
                                                else " (calling AE title).")),
        ]
        if role == "client":
            options.append(click.option(
                "--called-aet", default="ANY-SCP", show_default=True, metavar="AET",
                help="The peer's AE title (called AE title)."))
        options += [
            click.option("--tls/--no-tls", default=None,
                         help="Secure transport: TLS, as --profile says (PS3.15 Annex B). "
                              "Default: plain DICOM, unless a TLS option below is given. " + (
                                  f"DICOM over TLS is registered on port {DEFAULT_TLS_PORT}."
                                  if port_required else
                                  f"Default port becomes {DEFAULT_TLS_PORT}.")),
            click.option("--cert", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                         help="Our certificate (PEM, chain after the leaf)."
                              + (" Required with --tls." if role == "server" else
                                 " Needed when the server requires client certificates.")),
            click.option("--key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                         help="Private key of --cert (PEM, may be encrypted). Default: in --cert."),
            click.option("--ca", type=click.Path(exists=True, path_type=Path),
                         help="CA certificates we trust to sign the peer's certificate: a PEM "
                              "file, or a folder of them (hashed by openssl rehash; else its "
                              ".pem/.crt/.cer/.der files are read, PEM or DER)."
                              + (" Required with --tls, unless --peer-cert none."
                                 if role == "server" else
                                 " Default: the system trust store.")),
            click.option("--crl", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                         multiple=True, metavar="FILE",
                         help="Certificate revocation list (PEM) to check the peer's "
                              "certificate against (repeat for more); each CA that issues "
                              "peer certificates then needs a current one. "
                              + ("Re-read when it changes (or at SIGHUP). "
                                 if role == "server" else "")
                              + "dicomnet certs revoke writes one for its PKI."),
            click.option("--profile", type=click.Choice(list(PROFILES)), metavar="NAME",
                         default=DEFAULT_PROFILE, show_default=True,
                         help="TLS profile of PS3.15 Annex B (protocol versions, suites, "
                              "key sizes): " + _profiles_help() + "."),
        ]
        if role == "server":
            options.append(click.option(
                "--peer-cert", type=click.Choice(["required", "optional", "none"]),
                default="required", show_default=True,
                help="Must clients present a certificate (mutual authentication)?"))
        else:
            options += [
                click.option("--no-verify", is_flag=True,
                             help="DANGEROUS: do not verify the server's certificate or name. "
                                  "Anyone can impersonate the server. Tests only."),
                click.option("--server-name", metavar="NAME",
                             help="Host name expected in the server's certificate (and sent "
                                  "as SNI). Default: HOST."),
                click.option("--hostname-from-cn", is_flag=True,
                             help="Also take a server certificate that names the host only "
                                  "in its subject CN, with no subjectAltName (RFC 9525 no "
                                  "longer allows it; an old device). Warns."),
            ]
        options.append(click.option(
            "--allow-ca-peer-cert", is_flag=True,
            help="Also take a " + ("client" if role == "server" else "server")
                 + " whose own certificate is a CA's (CA:TRUE) and not in --ca (RFC 5280 "
                   "4.2.1.9: its key signs certificates; an old device issued one so). "
                   "Warns."))
        options += [
            click.option("--ciphers", callback=_split_ciphers, metavar="LIST",
                         help="TLS 1.2 cipher suites, comma separated (IANA or OpenSSL "
                              "names), most preferred first. Default: the profile's."),
            click.option("--key-password-env", metavar="VAR",
                         help="Read the private key's password from this environment "
                              "variable. Without it (or --key-password-file) you are asked "
                              "when the key is encrypted and stdin is a terminal."),
            click.option("--key-password-file",
                         type=click.Path(exists=True, dir_okay=False, path_type=Path),
                         help="Read the private key's password from this file (first line)."),
            click.option("--timeout", type=click.FloatRange(min=0, min_open=True),
                         metavar="SECONDS", help=_timeout_help(role)),
            click.option("--json", "json", is_flag=True,
                         help="Machine-readable JSON on stdout. " + (
                             "One line per event; the last is \"stopped\", or an "
                             "\"error\" event with \"error\" and \"exit_code\"."
                             if role == "server" else
                             "One document whatever happens (a usage error, a failure, "
                             "Ctrl-C): its \"error\" and \"exit_code\" say how the "
                             "run ended.")),
            click.option("-v", "--verbose", count=True,
                         help="-v: INFO logs on stderr; -vv: DEBUG and tracebacks."),
        ]
        for option in reversed(options):
            wrapper = option(wrapper)
        return wrapper  # type: ignore[return-value]

    return decorate


#: One phrase per profile for --help (PS3.15 Annex B; security/profiles.py says more).
_PROFILE_PHRASES = {
    "bcp195-rfc9325": "TLS 1.3 preferred, TLS 1.2 with ECDHE AES-GCM only",
    "bcp195-rfc9325-modified": "TLS 1.2 or 1.3, ECDHE with AEAD ciphers only, no suite added",
    "bcp195": ("RFC 7525, falling back to TLS 1.0 and AES-CBC for old peers (a client "
               "offers no DHE suite: at that level no group size is checked)"),
    "bcp195-non-downgrading": "RFC 7525 without that fallback",
    "bcp195-extended": "TLS 1.2 only, AEAD suites only",
    "aes": "TLS_RSA_WITH_AES_128_CBC_SHA, no forward secrecy",
    "basic": "TLS_RSA_WITH_3DES_EDE_CBC_SHA only",
}


def _profiles_help() -> str:
    return "; ".join(
        f"{p.name} ({p.section.replace(' (retired)', ', retired')}): "
        + _PROFILE_PHRASES.get(p.name, p.description)
        for p in PROFILES.values())


def _timeout_help(role: Role) -> str:
    """The --timeout help, with the defaults of config.Timeouts it replaces
    (``NetworkOptions.timeouts``)."""
    t = Timeouts()
    if role == "server":
        return ("Bound on each wait for a client: the TLS handshake, its association "
                "request, the rest of a PDU once it has started (or the next PDU "
                "of a message in progress), the client reading "
                "some of what is sent, its close after a release or abort. Default: "
                f"{t.tls_handshake:g} s for the TLS handshake, {t.artim:g} s for the "
                f"association request or the close, {t.pdu:g} s for the rest of a PDU "
                f"once it has started (or the next one of a message in progress), "
                f"{t.dimse:g} s for the client to read. Not the "
                "silence between requests (--idle-timeout) nor the server's own work "
                "on one (--operation-timeout).")
    return ("Bound on each wait for the server: connect, TLS handshake, association "
            "and release, each DIMSE response, the rest of a PDU once it has started "
            "(or the next one of a message in progress), "
            "the server reading some of what is sent. Default: "
            f"{t.connect:g} s to connect, {t.tls_handshake:g} s for the TLS handshake, "
            f"{t.acse:g} s for the association or its release, {t.dimse:g} s for each "
            "DIMSE response or for the server to read, "
            f"{t.pdu:g} s for the rest of a PDU once it has started (or the next one "
            "of a message in progress). Time of this "
            "side's own between requests (reading the next file) is no wait: "
            f"{t.idle:g} s of it abort the association.")


#: What a command reports before a failed or interrupted run exits: it gets the
#: ``error:`` line's message and the exit code (``--json`` prints its document).
OnExit = Callable[[str, int], None]


def is_interruption(code: int) -> bool:
    """Whether the exit code is that of a Ctrl-C or a SIGTERM."""
    return code in (EXIT_INTERRUPTED, EXIT_TERMINATED)


def run_async(
    main: Coroutine[Any, Any, T] | Callable[[], Coroutine[Any, Any, T]], *, verbose: int,
    on_exit: OnExit | None = None, sigterm_interrupts: bool = False,
) -> T:
    """Run ``main`` (a coroutine, or a function making it: then made here, where
    a Ctrl-C cannot come between its making and its closing); turn expected
    failures into one line on stderr and an exit code. Before that exit (Ctrl-C
    included), ``on_exit`` (if given) reports what was done. With
    ``sigterm_interrupts``, SIGTERM is handled as Ctrl-C, but exits 143 (what
    each signal does: :class:`_Interrupts`)."""
    import asyncio

    interrupts: _Interrupts | None = None
    coro: Coroutine[Any, Any, T] | None = None

    def exit_with(message: str, code: int) -> NoReturn:
        if on_exit is not None:
            on_exit(message, code)
        fail(message, code)

    try:
        coro = main if isinstance(main, Coroutine) else main()
        interrupts = _Interrupts(sigterm=sigterm_interrupts)
        with interrupts.handled():
            return _run(coro, interrupts)
    except (KeyboardInterrupt, asyncio.CancelledError) as exc:
        # CancelledError: the command's task, cancelled by a signal (_Interrupts).
        # Never started if the Ctrl-C came first: closed, no "never awaited".
        if coro is not None:
            coro.close()
        elif isinstance(main, Coroutine):
            main.close()
        exit_with(*interruption(exc, terminated=interrupts is not None
                                and interrupts.terminated))
    except click.ClickException:
        raise
    except ConfigurationError as exc:
        _trace(verbose)
        exit_with(in_cli_words(str(exc)), EXIT_USAGE)
    except DicomNetError as exc:
        _trace(verbose)
        exit_with(in_cli_words(str(exc)), EXIT_NETWORK)
    except OSError as exc:
        _trace(verbose)
        where = f" ({exc.filename})" if exc.filename else ""
        exit_with(f"{exc.strerror or exc}{where}", EXIT_NETWORK)


def _run(coro: Coroutine[Any, Any, T], interrupts: _Interrupts) -> T:
    """asyncio.run, whose loop closing (its async generators, its executor's
    threads) a signal no longer interrupts: a Ctrl-C then raised
    KeyboardInterrupt inside the loop's own clean-up, and its tracebacks
    ("Exception ignored in: BaseEventLoop.__del__") followed. One is noted
    instead, and the run reported as interrupted once the loop is closed."""
    import asyncio

    main = _woken_by_signals(coro, interrupts)
    try:
        with asyncio.Runner() as runner:
            result = runner.run(main)
    finally:
        main.close()  # never started if interrupted before: no "never awaited"
    if interrupts.late:
        raise KeyboardInterrupt
    return result


class _Interrupts:
    """What Ctrl-C (and SIGTERM, with ``sigterm``) does while run_async runs a
    command; it is their handler from before the loop starts until it is closed.

    The first cancels the command's task, as asyncio.run's own handler does: the
    command cleans up (store aborts its association and reports) where it
    expects a cancel. The second cancels it again: asyncio.run raised
    KeyboardInterrupt wherever the main thread then was (a transport's callback,
    another task, a generator's finalizer, in the middle of the clean-up the
    first one started), which printed tracebacks ("Task exception was never
    retrieved", "aclose(): asynchronous generator is already running") and
    skipped the rest. A cancel ends the clean-up's waits as promptly and goes
    where the clean-up expects one. The third quits at once
    (:func:`~dicomnet.cli.exits.quit_now`): a way out of a clean-up that would
    not end. One that comes before the task runs cancels it as it starts; one
    that comes after it ended (the loop closing) is noted, and the run exits as
    interrupted."""

    def __init__(self, *, sigterm: bool) -> None:
        self.sigterm = sigterm
        self.count = 0
        self.terminated = False
        #: The command's task, once it runs (set by _woken_by_signals).
        self.task: asyncio.Task[Any] | None = None
        #: The first signal came once the task had ended.
        self.late = False

    def __call__(self, signum: int, frame: Any) -> None:
        self.count += 1
        self.terminated = self.terminated or signum == signal.SIGTERM
        if self.count >= 3:
            exits.quit_now(*interruption(terminated=self.terminated))
        if self.task is None:
            return  # not running yet: _woken_by_signals cancels it as it starts
        if not self.task.done():
            self.task.cancel()  # the wakeup fd wakes the loop
        elif self.count == 1:
            # The first, once the command ended: it did not see it. (One that took
            # the cancel as its normal end, serve, ended as the signal asked.)
            self.late = True

    @contextmanager
    def handled(self) -> Iterator[None]:
        """This object as the handler of SIGINT, and of SIGTERM with ``sigterm``,
        then the previous ones again. A handler someone else set (or SIG_IGN) is
        left alone: only Python's Ctrl-C handler, SIGTERM's default action and
        the dicomnet program's SIGTERM handler are replaced."""
        replaced: list[tuple[int, Any]] = []
        ours: list[tuple[int, tuple[Any, ...]]] = [(signal.SIGINT, (signal.default_int_handler,))]
        if self.sigterm:
            ours.append((signal.SIGTERM, (signal.SIG_DFL, exits.raise_terminated)))
        try:
            for signum, replaceable in ours:
                previous = signal.getsignal(signum)
                if any(previous is handler for handler in replaceable):
                    with contextlib.suppress(ValueError):  # not the main thread
                        signal.signal(signum, self)
                        replaced.append((signum, previous))
            yield
        finally:
            for signum, previous in replaced:
                if signal.getsignal(signum) is self:
                    signal.signal(signum, previous)


def command_tls_config(net: NetworkOptions, on_exit: OnExit | None = None) -> TLSConfig | None:
    """``net.tls_config()``, whose password prompt a Ctrl-C (or SIGTERM) leaves:
    reported through ``on_exit`` as one during the network work (``--json``
    promises its document then too), exit 130 (143). A key's password not to be
    had (no terminal to ask on, an unset --key-password-env, an unreadable
    --key-password-file) is one ``error:`` line, exit 2, as a wrong one is
    (``run_async``), not click's usage block: the flags were right."""
    try:
        return net.tls_config()
    except KeyboardInterrupt as exc:
        message, code = interruption(exc)
    except ConfigurationError as exc:
        message, code = in_cli_words(str(exc)), EXIT_USAGE
    if on_exit is not None:
        on_exit(message, code)
    fail(message, code)


async def _woken_by_signals(coro: Coroutine[Any, Any, T], interrupts: _Interrupts) -> T:
    """Await ``coro`` as ``interrupts``' task, with the event loop woken by every
    signal Python handles.

    A Python-level signal handler (``signal.signal``) runs when the main thread
    next executes Python code; the loop learns of it only by the EINTR of its
    ``epoll_wait``. A SIGINT arriving just before the loop enters ``epoll_wait``
    interrupts nothing: the loop sleeps on until its next timer or I/O event
    (``dicomnet store`` awaiting a C-STORE response: up to the DIMSE timeout,
    60 s). A wakeup fd (what ``loop.add_signal_handler`` sets) makes the C-level
    handler also write to a socket the loop watches."""
    import asyncio

    interrupts.task = asyncio.current_task()
    if interrupts.count:  # a signal before the task ran
        coro.close()
        raise asyncio.CancelledError
    loop = asyncio.get_running_loop()
    try:
        wake, wakeup = socket.socketpair()
    except BaseException:  # no descriptors left, or a cancel: coro is never run
        coro.close()
        raise
    with wake, wakeup:
        wake.setblocking(False)
        wakeup.setblocking(False)
        try:
            loop.add_reader(wake.fileno(), _drain, wake)
        except NotImplementedError:  # Windows' proactor loop sets a wakeup fd itself
            return await coro
        try:
            try:
                previous = signal.set_wakeup_fd(wakeup.fileno(), warn_on_full_buffer=False)
            except ValueError:  # not the main thread: no signal handlers here
                return await coro
            try:
                return await coro
            finally:
                signal.set_wakeup_fd(previous)
        finally:
            loop.remove_reader(wake.fileno())


def _drain(sock: socket.socket) -> None:
    """The signal numbers the wakeup fd got: the Python handlers do the work."""
    with contextlib.suppress(OSError):
        while sock.recv(4096):
            pass


def _trace(verbose: int) -> None:
    if verbose >= 2:
        traceback.print_exc(file=sys.stderr)


def command_name(argv0: str | None = None) -> str:
    """How the person can run this very ``dicomnet`` again: its name when the
    shell finds it on PATH, else the path it was run by (``scripts/demo`` runs
    the clone's ``.venv/bin/dicomnet``, which is on no PATH), else ``python -m
    dicomnet`` with this interpreter."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    found = shutil.which("dicomnet")
    if found and argv0 and os.path.realpath(found) == os.path.realpath(argv0):
        return "dicomnet"
    if argv0 and os.path.basename(argv0) == "dicomnet" and os.path.isfile(argv0):
        return shlex.quote(os.path.abspath(argv0))
    return f"{shlex.quote(sys.executable)} -m dicomnet"
