"""A library user's mistakes end in the one exception tree (dicomnet.errors), with
words that say what to fix: never a bare OverflowError, FileNotFoundError or
FileExistsError, and a hook's bad answer is not sent to the peer as it is."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dicomnet.aio.client import associate, open_association
from dicomnet.aio.server import AssociationInfo
from dicomnet.config import Limits
from dicomnet.errors import AssociationRejected, ConfigurationError
from dicomnet.security.config import TLSConfig
from dicomnet.services.storage import StorageSCP
from dicomnet.storage.files import StorageError
from dicomnet.ul.negotiation import ContextRequest
from tests.aio.helpers import LOOPBACK, run, running_server


@pytest.mark.parametrize("port", [0, 70000, -1, "104"])
def test_a_port_out_of_range_is_a_configuration_error(port: object) -> None:
    async def main() -> None:
        await open_association(LOOPBACK, port)  # type: ignore[arg-type]

    with pytest.raises(ConfigurationError, match=r"port must be 1 to 65535, got"):
        run(main())


def test_a_key_log_in_a_missing_folder_is_a_configuration_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "keys.log"
    with pytest.raises(ConfigurationError) as caught:
        TLSConfig(keylog_file=missing).client_context_sync()
    assert str(caught.value) == (
        f"cannot open the TLS key log {missing}: No such file or directory")


def test_a_store_root_that_cannot_be_made_is_a_storage_error(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_bytes(b"")
    for root in (a_file, a_file / "below"):
        with pytest.raises(StorageError, match="cannot make the store's folder"):
            StorageSCP(root)


def test_a_hook_answer_that_is_no_rejection_rejects_without_a_reason(
        caplog: pytest.LogCaptureFixture) -> None:
    def hook(info: AssociationInfo) -> tuple[int, int, int]:
        return (9, 9, 9)  # sent as it was: "association rejected (result 9) by source 9"

    async def main() -> AssociationRejected:
        async with running_server(on_association_request=hook) as server:
            with pytest.raises(AssociationRejected) as caught:
                async with associate(LOOPBACK, server.port):
                    pass
            return caught.value

    with caplog.at_level(logging.ERROR, logger="dicomnet.aio"):
        rejected = run(main())
    assert (rejected.result, rejected.source, rejected.reason) == (1, 1, 1)
    assert any("answered (9, 9, 9)" in r.getMessage() for r in caplog.records)


def test_one_string_where_a_sequence_of_names_is_expected_is_refused() -> None:
    """Each letter of a lone string was proposed as a transfer syntax (ending in
    NoAcceptedContext), or taken for a cipher suite ("unknown TLS cipher suite 'T'")."""
    with pytest.raises(ConfigurationError, match=r"not one string: \('1\.2\.840\.10008\.1\.2',\)"):
        ContextRequest("1.2.840.10008.1.1", "1.2.840.10008.1.2")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="not one string"):
        TLSConfig(ciphers="TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")  # type: ignore[arg-type]
    listed = ContextRequest("1.2.840.10008.1.1", ["1.2.840.10008.1.2"])  # type: ignore[arg-type]
    assert listed.transfer_syntaxes == ("1.2.840.10008.1.2",)


@pytest.mark.parametrize("length", [1, 6])
def test_a_maximum_length_with_no_room_for_data_is_a_configuration_error(length: int) -> None:
    # PS3.8 9.3.5: a PDV's length, context ID and control header take 6 bytes;
    # peers now refuse such a Maximum Length, so it is refused here first.
    wanted = r"max_pdu_length must be 0 \(unlimited\) or at least 7, got"
    with pytest.raises(ConfigurationError, match=wanted):
        Limits(max_pdu_length=length)
    assert Limits(max_pdu_length=7).max_pdu_length == 7
    assert Limits(max_pdu_length=0).max_pdu_length == 0
