"""The public API as a user's script meets it (review 25): what each call raises is
one of dicomnet's errors, never a backend's (``errors.py``), against real peers
on loopback (our own server; DCMTK in tests/interop)."""

from __future__ import annotations

import asyncio
import gc
import warnings
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dicomnet import (
    CertificateInfo,
    ConfigurationError,
    ContextRequest,
    SecurityWarning,
    StorageSCP,
    TLSConfig,
    TLSError,
    blocking,
    make_dev_pki,
    serve,
    store_paths,
)
from dicomnet.security.certificates import DevPKI

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


@pytest.fixture(scope="module")
def dev_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    return make_dev_pki(tmp_path_factory.mktemp("pki"), key_type="ecdsa")


def _client_tls(pki: DevPKI, **kwargs: object) -> TLSConfig:
    return TLSConfig(certfile=pki.client_cert, keyfile=pki.client_key, cafile=pki.ca_cert,
                     **kwargs)  # type: ignore[arg-type]


def test_a_verify_callback_that_raises_refuses_the_peer_as_a_tls_error(
        dev_pki: DevPKI) -> None:
    """A ``verify_callback`` raising (a lookup that failed) reached the script as
    that bare RuntimeError, and the TLS connection was left open: the server
    (DCMTK's storescp, one association at a time) waited on it, and the next
    association timed out; now a TLSError that says so, the callback's exception
    its cause, and the connection closed (no ResourceWarning)."""

    def lookup(cert: CertificateInfo, depth: int) -> bool:
        raise RuntimeError("the certificate registry is down")

    async def scenario() -> None:
        server_tls = TLSConfig(certfile=dev_pki.server_cert, keyfile=dev_pki.server_key,
                               cafile=dev_pki.ca_cert)
        async with await serve(port=0, tls=server_tls) as server:
            with pytest.raises(TLSError) as caught:
                await asyncio.to_thread(blocking.echo, "localhost", server.port,
                                        tls=_client_tls(dev_pki, verify_callback=lookup))
            assert str(caught.value) == (
                f"TLS handshake with localhost:{server.port} failed: verify_callback "
                "raised RuntimeError: the certificate registry is down")
            assert isinstance(caught.value.__cause__, RuntimeError)
            status = await asyncio.to_thread(blocking.echo, "localhost", server.port,
                                             tls=_client_tls(dev_pki))
            assert int(status) == 0

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        asyncio.run(scenario())
        gc.collect()


def test_a_cafile_that_is_a_folder_is_a_configuration_error(dev_pki: DevPKI) -> None:
    """``TLSConfig(cafile=<a folder>)`` (capath meant) raised a bare
    IsADirectoryError from ssl; a capath that is a file was taken silently."""
    folder = dev_pki.directory
    with pytest.raises(ConfigurationError, match=(
            f"cafile {folder} is a folder, not a file: give a folder of CA "
            "certificates as capath")):
        TLSConfig(cafile=folder).client_context_sync()
    with pytest.raises(ConfigurationError, match=(
            f"capath {dev_pki.ca_cert} is a file, not a folder: give a file of CA "
            "certificates as cafile")):
        TLSConfig(capath=dev_pki.ca_cert).client_context_sync()


def _ct(**elements: object) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CT_IMAGE
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    return ds


def test_a_dataset_that_cannot_be_encoded_is_a_configuration_error(tmp_path: Path) -> None:
    """``BlockingAssociation.store(ds)`` of a data set pydicom cannot encode (a US
    value of 70000) raised pydicom's bare OSError (its struct.error within);
    now a ConfigurationError naming the element, nothing sent, and the
    association goes on: the next data set is stored."""

    async def scenario() -> None:
        scp = StorageSCP(tmp_path / "store", durable=False)
        async with await serve(port=0, providers=[scp]) as server:
            def script() -> list[int]:
                contexts = [ContextRequest(CT_IMAGE, (ExplicitVRLittleEndian,))]
                with blocking.associate("127.0.0.1", server.port,
                                        contexts=contexts) as assoc:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", UserWarning)  # pydicom's own
                        bad = _ct(Rows=70000)
                    with pytest.raises(ConfigurationError, match=(
                            r"the data set cannot be encoded in Explicit VR Little Endian "
                            r"\(1\.2\.840\.10008\.1\.2\.1\): "
                            r"With tag \(0028,0010\)")) as caught:
                        assoc.store(bad)
                    assert str(caught.value) == (
                        "the data set cannot be encoded in Explicit VR Little Endian "
                        "(1.2.840.10008.1.2.1): With tag (0028,0010) got exception: ushort "
                        "format requires 0 <= number <= 65535")
                    assert isinstance(caught.value.__cause__, OSError)
                    return [int(assoc.store(_ct(Rows=512)))]

            assert await asyncio.to_thread(script) == [0]
        assert len(list((tmp_path / "store").rglob("*.dcm"))) == 1

    asyncio.run(scenario())


def test_turning_the_host_name_check_off_warns_as_the_security_guide_says(
        dev_pki: DevPKI) -> None:
    """docs/security.md: ``verify_peer=False`` / ``check_hostname=False`` "(both
    warn)"; ``check_hostname=False`` built its context silently, though with it any
    certificate from a trusted CA (the system's public CAs when no cafile is given)
    is taken for any server. It warns once per TLSConfig, as verify_peer=False does."""
    config = TLSConfig(cafile=dev_pki.ca_cert, check_hostname=False)
    with pytest.warns(SecurityWarning, match=(
            r"^TLS host name verification is OFF \(check_hostname=False\): any certificate "
            r"a trusted CA issued is taken for this server$")):
        config.client_context_sync()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TLSConfig(cafile=dev_pki.ca_cert).client_context_sync()
        # One warning, and the one of verify_peer=False alone when both are off.
        with pytest.warns(SecurityWarning) as heard:
            TLSConfig(verify_peer=False, check_hostname=False).client_context_sync()
        assert [str(w.message) for w in heard] == [
            "TLS server certificate verification is OFF (verify_peer=False): anyone can "
            "impersonate the server"]


def test_blocking_store_takes_one_folder_given_alone(tmp_path: Path) -> None:
    """``blocking.store(host, port, "study/")`` (one folder, the common call) type-
    checks, a str being a Sequence[str], but was read letter by letter: "no such
    file or folder: s". A str or Path given alone is that one path."""
    folder = tmp_path / "study"
    folder.mkdir()
    for number in range(2):
        ds = _ct(Rows=512)
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(folder / f"{number}.dcm", enforce_file_format=True)

    async def scenario() -> None:
        scp = StorageSCP(tmp_path / "store", durable=False)
        async with await serve(port=0, providers=[scp]) as server:
            for given in (str(folder), folder):
                results = await asyncio.to_thread(blocking.store, "127.0.0.1", server.port,
                                                  given)
                assert sorted((r.path.name, r.status) for r in results) == [
                    ("0.dcm", 0), ("1.dcm", 0)]

    asyncio.run(scenario())


@pytest.mark.parametrize("listed", [False, True])
def test_store_paths_takes_one_path_given_alone(tmp_path: Path, listed: bool) -> None:
    """``store_paths`` as ``blocking.store``: one path alone is that path (a folder,
    or with ``listed`` a file), not its letters."""
    folder = tmp_path / "study"
    folder.mkdir()
    ds = _ct(Rows=512)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(folder / "0.dcm", enforce_file_format=True)
    given = str(folder / "0.dcm") if listed else str(folder)

    async def scenario() -> None:
        scp = StorageSCP(tmp_path / "store", durable=False)
        async with await serve(port=0, providers=[scp]) as server:
            results = await store_paths("127.0.0.1", server.port, given, listed=listed)
            assert [(r.path.name, r.status) for r in results] == [("0.dcm", 0)]

    asyncio.run(scenario())
