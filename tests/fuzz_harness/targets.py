"""Every fuzz target by name: (the function of bytes, its seed inputs)."""

from __future__ import annotations

from collections.abc import Callable

from . import client, dimse, security, server, storage, ul

Target = tuple[Callable[[bytes], None], Callable[[], list[bytes]]]

TARGETS: dict[str, Target] = {
    "pdu_codec": (ul.pdu_codec, ul.seeds_pdus),
    "framer": (ul.framer, ul.seeds_framer),
    "ul_connection": (ul.connection, ul.seeds_connection),
    "dimse_command": (dimse.command, dimse.seeds_commands),
    "dimse_assembly": (dimse.assembly, dimse.seeds_assembly),
    "dataset": (storage.dataset, storage.seeds_dataset),
    "store_sink": (storage.store_sink, storage.seeds_dataset),
    "server_receive": (server.receive, server.seeds_receive),
    "client_store": (client.store, client.seeds_store),
    "part10_file": (storage.part10_file, storage.seeds_part10_file),
    "names": (storage.names, storage.seeds_names),
    "part10_meta": (storage.part10_meta, storage.seeds_part10_meta),
    "pem": (security.pem, security.seeds_pem),
    "der": (security.der, security.seeds_der),
}
