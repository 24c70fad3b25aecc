"""Odil (Debian python3-odil 0.12.2, C++11 DICOM) as a peer of the interop tests.

Runs under Debian's /usr/bin/python3, not the project's venv (the bindings are
built for it): ``/usr/bin/python3 odil_peer.py CONFIG.json``. CONFIG's ``mode``:

- ``echo``: a C-ECHO to host:port; prints ``{"echo": "ok"}``.
- ``store``: one association proposing ``syntaxes`` for each file's SOP class,
  a C-STORE per file (``{"file", "status"}`` or ``{"file", "error"}``), then a
  release, or an A-ABORT after ``abort_after`` stores.
- ``scp``: waits for one association on ``port`` (``{"listening": port}`` just
  before it opens the port), answers C-ECHO and C-STORE, writes each data set to
  ``output``/SOP-Instance-UID.dcm, ``{"stored", "transfer_syntax"}`` each, and
  after ``abort_after`` stores sends an A-ABORT.

Every run ends with ``{"done": ...}``: how the association ended as Odil saw it,
with the negotiated maximum PDU length. Errors are printed, never raised, so
the test reads what went wrong.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import odil  # type: ignore[import-not-found]

NATIVE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
          "1.2.840.10008.1.2.1.99"}


def say(**line: Any) -> None:
    print(json.dumps(line), flush=True)


def text(value: Any) -> str:
    """Odil 0.12's registry and accessors give bytes or str depending on the call."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _associate(config: dict[str, Any], contexts: list[Any]) -> Any:
    association = odil.Association()
    association.set_peer_host(config.get("host", "127.0.0.1"))
    association.set_peer_port(int(config["port"]))
    parameters = association.update_parameters()
    parameters.set_calling_ae_title(config.get("calling", "ODIL"))
    parameters.set_called_ae_title(config.get("called", "DICOMNET"))
    parameters.set_presentation_contexts(contexts)
    if "max_pdu" in config:
        parameters.set_maximum_length(int(config["max_pdu"]))
    association.associate()
    return association


def echo(config: dict[str, Any]) -> None:
    scu_role = odil.AssociationParameters.PresentationContext.Role.SCU
    context = odil.AssociationParameters.PresentationContext(
        1, "1.2.840.10008.1.1", ["1.2.840.10008.1.2"], scu_role)
    association = _associate(config, [context])
    odil.EchoSCU(association).echo()
    say(echo="ok")
    association.release()
    say(done="released")


def store(config: dict[str, Any]) -> None:
    files = [Path(f) for f in config["files"]]
    data_sets = []
    for path in files:
        with odil.open(str(path)) as stream:
            data_sets.append(odil.Reader.read_file(stream)[1])
    sop_classes = sorted({text(ds.as_string("SOPClassUID")[0]) for ds in data_sets})
    scu_role = odil.AssociationParameters.PresentationContext.Role.SCU
    contexts = [odil.AssociationParameters.PresentationContext(
        2 * i + 1, sop_class, config["syntaxes"], scu_role)
        for i, sop_class in enumerate(sop_classes)]
    association = _associate(config, contexts)
    say(associated=True,
        max_pdu=association.get_negotiated_parameters().get_maximum_length())
    abort_after = config.get("abort_after")
    for n, (path, ds) in enumerate(zip(files, data_sets, strict=True)):
        if abort_after is not None and n == abort_after:
            association.abort(0, 0)
            say(done="aborted")
            return
        # By messages, not StoreSCU.store: that one returns nothing on a failure status.
        sop_class = text(ds.as_string("SOPClassUID")[0])
        request = odil.messages.CStoreRequest(
            association.next_message_id(), sop_class,
            text(ds.as_string("SOPInstanceUID")[0]), 0, ds)
        try:
            association.send_message(request, sop_class)
            response = odil.messages.CStoreResponse(association.receive_message())
            say(file=path.name, status=response.get_status())
        except Exception as error:  # reported to the test, not raised
            say(file=path.name, error=f"{type(error).__name__}: {error}")
    association.release()
    say(done="released")


def scp(config: dict[str, Any]) -> None:
    port = int(config["port"])
    output = Path(config["output"])
    association = odil.Association()
    # receive_association holds the GIL while it waits: the test watches the
    # port open itself (/proc/net/tcp), nothing can be printed meanwhile.
    say(listening=port)
    association.receive_association("v4", port)
    negotiated = association.get_negotiated_parameters()
    syntaxes: dict[str, list[str]] = {}
    for context in negotiated.get_presentation_contexts():
        syntaxes.setdefault(text(context.abstract_syntax), []).extend(
            text(ts) for ts in context.transfer_syntaxes)
    say(associated=True, calling=text(negotiated.get_calling_ae_title()).strip(),
        called=text(negotiated.get_called_ae_title()).strip(),
        max_pdu=negotiated.get_maximum_length(), contexts=syntaxes)
    stored = 0

    def on_store(request: Any) -> int:
        nonlocal stored
        ds = request.get_data_set()
        sop_class = text(request.get_affected_sop_class_uid())
        uid = text(request.get_affected_sop_instance_uid()).rstrip("\0")
        pixels = ds.as_binary("PixelData") if ds.has("PixelData") else []
        # Encapsulated Pixel Data (PS3.5 A.4) reads as its fragments: keep the
        # compressed syntax it came in; anything else is written explicit LE.
        compressed = [ts for ts in syntaxes.get(sop_class, []) if ts not in NATIVE]
        ts = compressed[0] if len(pixels) > 1 and compressed else "1.2.840.10008.1.2.1"
        meta = odil.DataSet()
        meta.add("MediaStorageSOPClassUID", [sop_class])
        meta.add("MediaStorageSOPInstanceUID", [uid])
        meta.add("TransferSyntaxUID", [ts])
        with odil.open(str(output / f"{uid}.dcm"), "wb") as stream:
            odil.Writer.write_file(ds, stream, meta, ts)
        stored += 1
        say(stored=uid, transfer_syntax=ts)
        return 0

    dispatcher = odil.SCPDispatcher(association)
    echo_scp = odil.EchoSCP(association)
    echo_scp.set_callback(lambda _request: 0)
    store_scp = odil.StoreSCP(association)
    store_scp.set_callback(on_store)
    dispatcher.set_echo_scp(echo_scp)
    dispatcher.set_store_scp(store_scp)
    abort_after = config.get("abort_after")
    while True:
        if abort_after is not None and stored >= abort_after:
            association.abort(0, 0)
            say(done="aborted")
            return
        try:
            dispatcher.dispatch()
        except odil.AssociationReleased:
            say(done="released")
            return
        except odil.AssociationAborted as error:
            say(done="peer aborted", error=str(error))
            return
        except Exception as error:  # reported to the test, not raised
            say(done="error", error=f"{type(error).__name__}: {error}")
            return


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    try:
        {"echo": echo, "store": store, "scp": scp}[config["mode"]](config)
    except Exception as error:  # reported to the test, not raised
        say(done="error", error=f"{type(error).__name__}: {error}")


if __name__ == "__main__":
    main()
