"""``dicomnet serve``: a Verification (and, when available, Storage) SCP."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dicomnet.cli.common import (
    SERVE_EXIT_CODES_EPILOG,
    NetworkOptions,
    cli_session,
    command_tls_config,
    network_options,
    print_json,
    run_async,
)
from dicomnet.cli.jsontext import path_fields
from dicomnet.cli.output import EXIT_WAIT, in_cli_words, out_line, server_output, stdout_written
from dicomnet.config import (
    DEFAULT_MIN_FREE,
    FreeSpace,
    Limits,
    Timeouts,
    check_ae_title,
    size_words,
)
from dicomnet.errors import ConfigurationError
from dicomnet.tuning import start_up_left_alone

# The server, its services and storage (pydicom, SQLite, cryptography) are imported
# where used: `serve --help`, and a usage error, load none of them.
if TYPE_CHECKING:
    import asyncio

    from dicomnet.aio.server import (
        AssociationInfo,
        AssociationRequestHook,
        DrainOutcome,
        Server,
        ServiceProvider,
    )
    from dicomnet.aio.server_events import ConnectionEvent
    from dicomnet.security.config import TLSConfig
    from dicomnet.services.storage import RefusedInstance, StoredInstance
    from dicomnet.storage.space import SpaceReserve

__all__ = ["allow_only", "drain_server", "serve", "stop_server", "storage_scp"]

log = logging.getLogger("dicomnet.cli")


def storage_scp(root: Path, *, duplicates: str = "keep", durable: bool = True,
                unknown_sop_classes: bool = False, layout: str = "hierarchical",
                on_stored: Callable[[StoredInstance], object] | None = None,
                on_refused: Callable[[RefusedInstance], object] | None = None,
                min_free: str | None = None,
                ) -> ServiceProvider | None:
    """A StorageSCP writing under ``root``, or None if the storage service is missing."""
    try:
        from dicomnet.services.storage import StorageSCP
    except ImportError:
        return None
    from dicomnet.storage.files import Layout, StorageError

    try:
        provider: ServiceProvider = StorageSCP(root, duplicates=duplicates, durable=durable,
                                               layout=Layout(layout),
                                               accept_unknown_sop_classes=unknown_sop_classes,
                                               on_stored=on_stored, on_refused=on_refused,
                                               min_free=min_free)
    except (StorageError, OSError) as exc:
        # A folder that cannot be used is the operator's to fix (exit 2), not the network's.
        if isinstance(exc, StorageError) and exc.errno is not None:
            reason = exc.reason  # the cause; the message names the folder --output gave
        else:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else (
                str(exc).removeprefix(f"{root}: "))  # the line names it already
        raise ConfigurationError(f"cannot store into --output {root}: {reason}") from exc
    return provider


@contextlib.contextmanager
def _stdout_reader_may_leave(*, last: bool = False) -> Iterator[None]:
    """A write to stdout whose reader went away (``serve --json | head -1``,
    a log shipper that died) is the end of the events, not of the server: one
    WARNING, then stdout goes to /dev/null (the recipe of Python's ``signal``
    documentation, note on SIGPIPE), so that no later line, nor the flush at
    exit, fails again."""
    try:
        yield
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        log.warning("stdout is closed (its reader went away): nothing more is written "
                    "to it%s", "" if last else "; the server goes on")


def _emit(net: NetworkOptions, text: str, **fields: Any) -> None:
    """A line on stdout, or with --json one JSON line (the last one, "stopped"
    or the "error" the run's end adds, is the document --json promises)."""
    with _stdout_reader_may_leave(last=fields.get("event") == "stopped"):
        if net.json:
            print_json(fields, line=True, last=fields.get("event") == "stopped")
        else:
            out_line(text)


def _stored_event(stored: StoredInstance) -> None:
    """--json: one line per object stored, for scripts that act on arrivals."""
    with _stdout_reader_may_leave():
        _print_stored(stored)


def _print_stored(stored: StoredInstance) -> None:
    print_json({"event": "stored", **path_fields("path", stored.path),
                "sop_class_uid": stored.sop_class_uid,
                "sop_instance_uid": stored.sop_instance_uid,
                "transfer_syntax_uid": stored.transfer_syntax_uid,
                "peer": f"{stored.peer[0]}:{stored.peer[1]}",
                "calling_aet": stored.calling_ae_title, "called_aet": stored.called_ae_title,
                "duplicate": stored.duplicate, "replaced": stored.replaced,
                "move_originator": None if stored.move_originator is None else {
                    "aet": stored.move_originator[0],
                    "message_id": stored.move_originator[1]},
                "tls": stored.security.protocol if stored.security is not None else None},
               line=True, last=False)


def _refused_event(refused: RefusedInstance) -> None:
    """--json: one line per object answered with a failure and not stored (its log
    line says the same on stderr), a duplicate rejected among them."""
    with _stdout_reader_may_leave():
        print_json({"event": "refused", "sop_class_uid": refused.sop_class_uid,
                    "sop_instance_uid": refused.sop_instance_uid,
                    "peer": f"{refused.peer[0]}:{refused.peer[1]}",
                    "calling_aet": refused.calling_ae_title,
                    "called_aet": refused.called_ae_title,
                    "status": f"0x{refused.status:04X}", "reason": refused.reason,
                    **(path_fields("path", refused.path) if refused.path is not None
                       else {"path": None}),
                    "move_originator": None if refused.move_originator is None else {
                        "aet": refused.move_originator[0],
                        "message_id": refused.move_originator[1]},
                    "tls": refused.security.protocol if refused.security is not None
                    else None},
                   line=True, last=False)


#: The "event" of each connection event's --json line, by its class (aio.server_events).
_EVENT_NAMES = {"AssociationAccepted": "association_accepted",
                "AssociationEnded": "association_ended",
                "ConnectionRefused": "connection_refused"}


def _connection_event(event: ConnectionEvent) -> None:
    """--json: one line per association accepted and ended, and per connection
    refused before it associated, for scripts that watch the server."""
    fields = event.to_dict()
    if isinstance(fields.get("reason"), str):  # the log's words: this CLI's flags
        fields["reason"] = in_cli_words(fields["reason"])
    with _stdout_reader_may_leave():
        print_json({"event": _EVENT_NAMES[type(event).__name__], **fields}, line=True,
                   last=False)


def allow_only(titles: frozenset[str]) -> AssociationRequestHook:
    """``on_association_request`` admitting only these calling AE titles; any other
    gets A-ASSOCIATE-RJ permanent, service user, calling AE title not recognized
    (PS3.8 Table 9-21: 1, 1, 3)."""
    from dicomnet.ul.pdu import Rejection

    def check(info: AssociationInfo) -> tuple[int, int, int] | None:
        return None if info.calling_ae_title in titles else (
            Rejection.CALLING_AE_TITLE_NOT_RECOGNIZED)
    return check


def _reload_on_hangup(server: Server, reloads: set[asyncio.Task[bool]]) -> None:
    """SIGHUP, the daemons' "read your configuration again": the TLS files now,
    without waiting for the next look at them. The outcome is logged by the reload
    (what changed and the certificate in use, or why the files cannot be used)."""
    import asyncio

    log = logging.getLogger("dicomnet.security")
    if server.tls is None:
        log.info("SIGHUP: plain DICOM, no TLS files to load")
        return
    log.info("SIGHUP: loading the TLS files again")
    task = asyncio.get_running_loop().create_task(server.reload_tls())
    reloads.add(task)  # held until done (the loop keeps only weak references)
    task.add_done_callback(reloads.discard)


def _folders_to_make(output: Path) -> list[Path]:
    """The folders of ``output`` that are not there yet, the innermost first."""
    try:
        from dicomnet.services.store_opening import missing_folders
    except ImportError:  # no storage service in this build
        return []
    return missing_folders(output)


def _unmake(output: Path, made: list[Path]) -> None:
    """Remove the folders ``made`` for a server that never listened, with the empty
    index opened in the innermost: nothing was stored there."""
    if not made:
        return
    from dicomnet.storage.index import INDEX_NAME
    from dicomnet.storage.index_file import COMPANIONS

    for suffix in ("", *COMPANIONS):
        with contextlib.suppress(OSError):
            (output / (INDEX_NAME + suffix)).unlink()
    for folder in made:
        with contextlib.suppress(OSError):  # not empty: someone else's meanwhile
            folder.rmdir()


async def _serve(host: str, port: int, output: Path, limits: Limits,
                 net: NetworkOptions, *, tls: TLSConfig | None, duplicates: str = "keep",
                 layout: str = "hierarchical", durable: bool = True,
                 allowed: frozenset[str] = frozenset(), check_called: bool = False,
                 unknown_sop_classes: bool = False,
                 operation_timeout: float | None = None, idle_timeout: float | None = None,
                 drain_timeout: float = 0, min_free: str | None = None) -> None:
    """Serve until Ctrl-C or SIGTERM (run_async cancels this task), then drain
    (up to ``drain_timeout`` seconds) and stop: that is success. Before it
    listens, they interrupt it (exit 130, 143)."""
    import asyncio

    from dicomnet.aio.server import serve as start_server
    from dicomnet.services.verification import VerificationSCP

    # --timeout sets ARTIM too (PS3.8 9.1.5: the A-ASSOCIATE-RQ a server awaits).
    timeouts = net.timeouts() or Timeouts()
    if operation_timeout is not None:
        timeouts = dataclasses.replace(timeouts, operation=operation_timeout)
    if idle_timeout is not None:
        timeouts = dataclasses.replace(timeouts, idle=idle_timeout)
    providers: list[ServiceProvider] = [VerificationSCP()]
    made = _folders_to_make(output)
    storage = storage_scp(output, duplicates=duplicates, durable=durable, layout=layout,
                          unknown_sop_classes=unknown_sop_classes,
                          on_stored=_stored_event if net.json else None,
                          on_refused=_refused_event if net.json else None,
                          min_free=min_free)
    if storage is not None:
        providers.append(storage)
    else:
        logging.getLogger("dicomnet.aio").warning(
            "storage service not available in this build: C-ECHO only")
    try:
        server = await start_server(
            ae_title=net.aet, host=host, port=port, tls=tls, providers=providers,
            timeouts=timeouts, limits=limits,
            on_association_request=allow_only(allowed) if allowed else None,
            require_called_ae_title=check_called,
            on_connection_event=_connection_event if net.json else None,
        )
    except BaseException:
        # Not listening (an address in use, a Ctrl-C): the index is closed all the same.
        close = getattr(storage, "close", None)
        if callable(close):
            close()
        _unmake(output, made)  # a start that failed leaves no folder behind
        raise
    try:
        # Nothing in start_server had to wait: a Ctrl-C or SIGTERM that came
        # while it loaded the certificates or bound the port is delivered here,
        # before the server says it listens. It interrupted the start (130, 143).
        await asyncio.sleep(0)
    except asyncio.CancelledError:
        await stop_server(server)
        raise
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[bool]] = set()
    hangup = getattr(signal, "SIGHUP", None)  # none on Windows
    if hangup is not None:
        # Not possible outside the main thread (tests) or on Windows.
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(hangup, _reload_on_hangup, server, reloads)
    if tls is not None:
        mode = f"TLS, profile {tls.profile}, client certificates {tls.peer_certificate}"
    else:
        mode = "plain DICOM, not encrypted"
    space = getattr(storage, "space", None)  # its free-space reserve (storage.space)
    services = "C-ECHO" + (f", C-STORE into {output}" if storage is not None else "") + (
        f", keeping {_kept_free(space)}" if space is not None else "")
    # From here on the collector leaves start-up's objects alone (dicomnet.tuning).
    with start_up_left_alone():
        try:
            _emit(net, f"listening on {host}:{server.port} as {server.ae_title} ({mode}); "
                       f"{services}. Ctrl-C stops.",
                  event="listening", host=host, port=server.port, ae_title=server.ae_title,
                  tls=tls is not None, profile=tls.profile if tls else None,
                  peer_cert=tls.peer_certificate if tls else None,
                  output=str(output) if storage is not None else None,
                  layout=layout if storage is not None else None,
                  min_free=str(space.reserve) if space is not None else None,
                  min_free_bytes=space.minimum if space is not None else None,
                  allowed_aets=sorted(allowed) or None, check_called_aet=check_called,
                  max_associations=limits.max_associations,
                  max_per_host=limits.max_associations_per_host,
                  max_pending=limits.max_pending_connections,
                  max_async=limits.max_async_operations, operation_timeout=timeouts.operation,
                  idle_timeout=timeouts.idle,
                  drain_timeout=drain_timeout)
            # On stdout before the server answers anyone: scripts learn the port from it.
            stdout_written(EXIT_WAIT)
            try:
                await server.serve_forever()
            except asyncio.CancelledError:
                _uncancel()  # the stop asked for: what follows is no longer cancelled
            # SIGHUP stays handled while associations drain: its default ends the process.
            outcome = await drain_server(server, drain_timeout)
        finally:
            if hangup is not None:
                with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                    loop.remove_signal_handler(hangup)
        await stop_server(server, on_signal=_stopping)
    _emit(net, f"stopped: {outcome.drained} association(s) ended by their peers, "
               f"{outcome.aborted} aborted", event="stopped", drained=outcome.drained,
          aborted=outcome.aborted)


async def drain_server(server: Server, timeout: float) -> DrainOutcome:
    """``server.drain(timeout)``: the associations under way may end by
    themselves for up to ``timeout`` seconds, then those left are aborted. A
    signal meanwhile (the second: the first began the stop) aborts them at
    once; the stop goes on (stop_server), and the third quits at once
    (run_async)."""
    import asyncio

    draining = asyncio.ensure_future(server.drain(timeout))
    while True:
        try:
            return await asyncio.shield(draining)
        except asyncio.CancelledError:
            if draining.cancelled():
                raise
            _uncancel()
            if server.active_associations:
                log.warning("stopping at once: aborting the %d association(s) still open; "
                            "once more quits at once (the index may then miss the last "
                            "objects: dicomnet reindex)", server.active_associations)
            server.close()  # the drain ends now


async def stop_server(server: Server, *,
                      on_signal: Callable[[], None] | None = None) -> bool:
    """Close ``server``: it stops accepting, aborts every association (each
    abort and close bounded by a timeout), lets the stores under way finish or
    removes their temporary files, then writes the last index rows and closes
    the index. A cancel of the calling task (a Ctrl-C, SIGTERM: run_async)
    interrupts none of it, which would leave the index without the last rows
    and temporary files behind: ``on_signal`` is called, and the stop goes on
    (the third signal quits at once: run_async). Returns whether one came."""
    import asyncio

    server.close()
    closing = asyncio.ensure_future(server.wait_closed())
    signalled = False
    while True:
        try:
            await asyncio.shield(closing)
            return signalled
        except asyncio.CancelledError:
            if closing.cancelled():
                raise
            _uncancel()
            signalled = True
            if on_signal is not None:
                on_signal()


def _stopping() -> None:
    log.warning("stopping: the associations are being aborted and the store's index "
                "written; once more quits at once (the index may then miss the last "
                "objects: dicomnet reindex)")


def _uncancel() -> None:
    import asyncio

    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


def _checked_min_free(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """--min-free checked at once (a usage error, exit 2); the store parses it again."""
    try:
        FreeSpace.parse(value)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc)) from exc
    return value


def _kept_free(space: SpaceReserve) -> str:
    """The reserve for the listening line: "2.3 GiB free (1% of its disk)"."""
    if space.reserve.percent:
        return f"{size_words(space.minimum)} free ({space.reserve} of its disk)"
    return f"{space.reserve} free"


@click.command(epilog=SERVE_EXIT_CODES_EPILOG)
@click.option("--host", default="127.0.0.1", show_default=True, metavar="ADDRESS",
              help="Address to listen on; 0.0.0.0 for every interface.")
@click.option("--port", type=click.IntRange(0, 65535),
              help="Port; 0 picks a free one. Default: 2762 with --tls, else 11112.")
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path),
              default=Path("dicomnet-store"), show_default=True,
              help="Where received objects are stored (C-STORE).")
@click.option("--max-associations", type=click.IntRange(min=1),
              default=Limits().max_associations, show_default=True,
              help="Associations at once; more are rejected (transient, local limit).")
@click.option("--max-per-host", type=click.IntRange(min=1),
              default=Limits().max_associations_per_host, show_default=True,
              help="Associations at once from one peer address; more are rejected "
                   "(transient, local limit), so one host cannot take every slot.")
@click.option("--max-pending", type=click.IntRange(min=1),
              default=Limits().max_pending_connections, show_default=True,
              help="Connections not yet associated (in the TLS handshake, or awaiting their "
                   "association request) at once; each one more closes the oldest, so "
                   "that idle connections cannot use up the server's file descriptors.")
@click.option("--max-async", type=click.IntRange(1, 0xFFFF),
              default=Limits().max_async_operations, show_default=True,
              help="The asynchronous operations window granted at most (PS3.7 D.3.3.3): "
                   "requests a peer may have outstanding, performed at once; a peer "
                   "asking for fewer gets what it asks; 1 serves one at a time.")
@click.option("--operation-timeout", type=click.FloatRange(min=0, min_open=True),
              default=Timeouts().operation, show_default=True, metavar="SECONDS",
              help="Longest the server may take to perform one request (storing a large "
                   "object, say) before its answer is ready; past it the association is "
                   "aborted (A-ABORT), so that a hung disk or handler cannot hold its slot.")
@click.option("--idle-timeout", type=click.FloatRange(min=0, min_open=True),
              default=Timeouts().idle, show_default=True, metavar="SECONDS",
              help="Longest an association may stay silent (nothing received, nothing "
                   "sent taken) before it is aborted (A-ABORT), freeing its slot: more "
                   "for a modality that keeps one open between studies.")
@click.option("--drain-timeout", type=click.FloatRange(min=0), default=30.0,
              show_default=True, metavar="SECONDS",
              help="On Ctrl-C or SIGTERM, how long the associations under way may go on "
                   "to their end (their peers release them) while no new connection is "
                   "accepted; those still open then are aborted. 0 aborts them at once. "
                   "A second Ctrl-C or SIGTERM aborts them at once.")
@click.option("--duplicates", type=click.Choice(["keep", "overwrite", "reject"]),
              default="keep", show_default=True,
              help="A second object with the same SOP Instance UID: keep the first "
                   "(answer Success), overwrite it, or reject it (failure 0111H).")
@click.option("--layout", type=click.Choice(["hierarchical", "flat"]), default="hierarchical",
              show_default=True,
              help="Where each object goes below --output: hierarchical, "
                   "STUDY_UID/SERIES_UID/SOP_UID.dcm; flat, SOP_UID.dcm in --output "
                   "itself (as storescp writes by default). Flat also stores objects that "
                   "lack a Study or Series Instance UID, which hierarchical refuses (C000: "
                   "it has no folder for them); those objects are not indexed (the index "
                   "files instances under their study and series), and a warning names "
                   "each. Either way the names are checked UIDs, never joined unchecked.")
@click.option("--min-free", default=DEFAULT_MIN_FREE, show_default=True, metavar="SIZE|PERCENT",
              callback=_checked_min_free,
              help="Free space to keep on --output's file system: a size (500MB, 5GiB) or "
                   "a percentage of the file system (10%); 0 keeps none. An object that "
                   "would leave less is refused with A700 (out of resources, which senders "
                   "may retry later) and nothing of it stays, so that no sender can fill the "
                   "disk. Counted as an unprivileged process sees it: space the file "
                   "system keeps for root (ext4: 5%) is never used, even by root.")
@click.option("--no-fsync", is_flag=True,
              help="Do not fsync stored files before answering Success: renames stay "
                   "atomic, but a power cut may lose acknowledged objects. For tests and "
                   "benchmarks.")
@click.option("--accept-unknown-sop-classes", is_flag=True,
              help="Also store objects of SOP classes this server does not know (private "
                   "or newer ones: a vendor's non-image objects, say), when proposed as a "
                   "valid UID; known SOP classes of other services (Query/Retrieve, "
                   "Worklist) stay refused. Default: only the Storage SOP classes of the "
                   "standard.")
@click.option("--allow-aet", "allow_aets", multiple=True, metavar="AET",
              help="Admit only associations from this calling AE title (repeat for more); "
                   "others are rejected (A-ASSOCIATE-RJ: calling AE title not recognized). "
                   "Default: any. With TLS, this is on top of the client certificate check.")
@click.option("--check-called-aet", is_flag=True,
              help="Reject associations that call another AE title than --aet "
                   "(A-ASSOCIATE-RJ: called AE title not recognized). Default: answer "
                   "whatever the caller calls us.")
@network_options("server")
def serve(*, host: str, port: int | None, output: Path, max_associations: int,
          max_per_host: int, max_pending: int, max_async: int, operation_timeout: float,
          idle_timeout: float, drain_timeout: float, duplicates: str, layout: str,
          no_fsync: bool, allow_aets: tuple[str, ...], check_called_aet: bool,
          accept_unknown_sop_classes: bool, min_free: str,
          net: NetworkOptions) -> None:
    """Run a DICOM server: C-ECHO, and C-STORE into --output.

    Logs one line per association on stderr, rejections included: who, how it
    ended, its requests answered by status ("3 message(s) (2 success, 1 failure
    0xA700)"), how long it lasted and its TLS link; and one line per object not
    stored, with its status and why. Ctrl-C or
    SIGTERM stops it: it stops accepting (new connections are refused), lets
    the associations under way end by themselves for up to --drain-timeout
    seconds, aborts those still open then (their partial objects removed),
    writes its index and exits 0 (success). A second Ctrl-C or SIGTERM aborts
    them at once and says what the stop waits for; a third quits at once.

    With --tls, the --cert, --key and --ca files are watched (once a second, before
    a handshake): when they change, new connections get the new certificate or
    trust, and open associations go on. SIGHUP loads them at once. Files that cannot
    be used (half copied, a key that does not match the certificate, an expired
    certificate) are logged, and the previous certificate stays in use. An
    encrypted key is opened with --key-password-file read again, else with the
    password given at start (--key-password-env, or the prompt, never asked again).

    Stored objects are indexed in index.sqlite in --output. Should the index
    miss some (a server killed while storing, the file deleted), stop the
    server and run dicomnet reindex on --output; sending the objects again
    restores their rows too. One server per --output: a second one (or
    reindex) on a folder in use exits 2 (it holds a lock on the folder).

    With --json, stdout carries one JSON object per line, its "event" saying
    which (the log stays on stderr):

    \b
      listening             first: host, port, ae_title, tls (true or false),
                            profile and peer_cert (null without TLS),
                            output, layout (hierarchical or flat),
                            min_free (as given, "1%"; null:
                            none kept), min_free_bytes (what that is on
                            --output's file system), allowed_aets (null: any),
                            check_called_aet, max_associations,
                            max_per_host, max_pending, max_async,
                            operation_timeout,
                            idle_timeout, drain_timeout
      association_accepted  peer, calling_aet, called_aet, contexts (how
                            many presentation contexts were accepted),
                            async_window (requests the peer may have
                            outstanding; 1: one at a time)
      stored                an object durable: path, sop_class_uid,
                            sop_instance_uid, transfer_syntax_uid, peer,
                            calling_aet, called_aet, duplicate (its SOP
                            Instance UID was held already, and that copy
                            kept: --duplicates keep; false for one that
                            replaced it: overwrite), replaced (an earlier
                            copy was there and this one took its place:
                            --duplicates overwrite, or a copy found
                            damaged), move_originator
                            (aet and message_id of the C-MOVE it was sent
                            for, or null), tls; path_bytes
                            for a path with bytes that are not UTF-8 (its
                            exact bytes, base64; path shows each as \\xff)
      refused               an object answered with a failure and not
                            stored (stderr has its line too):
                            sop_class_uid, sop_instance_uid, peer,
                            calling_aet, called_aet, status (as in
                            answers: "0x0111"), reason (the log's words,
                            local paths included), path (the copy kept
                            of a duplicate rejected: --duplicates
                            reject; else null), move_originator, tls
      association_ended     peer, calling_aet, called_aet, how (released or
                            aborted), by (who aborted: us, peer, or null:
                            released, or the connection lost), reason,
                            seconds, messages, objects
                            (C-STORE requests), bytes_received, answers
                            (status code -> count, e.g. {"0x0000": 9}),
                            unanswered
      connection_refused    before any association: peer, stage (tls,
                            association: A-ASSOCIATE-RJ sent, protocol: a
                            request not read or out of turn, limit: too many
                            connections waiting), reason, seconds,
                            calling_aet and called_aet (or null)
      stopped               last, after Ctrl-C or SIGTERM: drained (the
                            associations that ended by themselves while it
                            drained), aborted (those still open at its end,
                            aborted); a run that fails
                            (before it listens, or later) ends with "error"
                            instead: error, exit_code, interrupted
      output_dropped        lines lost because a reader of stdout (or
                            stderr) fell more than 8 MiB behind: stream
                            (stdout or stderr), lines (how many); written
                            once it has caught up, with a WARNING on stderr

    Lines are written by threads of their own, so a reader that lags never
    holds the server; at the stop, lines pending get 5 seconds to go out.
    The association and connection lines also carry tls (TLS version, or null
    for plain DICOM), cipher_suite and client_cert (the client certificate's
    subject, or null). A connection closed before it sent anything (a health
    check) has no line.

    \b
    Examples:
      dicomnet serve                         plain DICOM on 127.0.0.1:11112
      dicomnet serve --tls --cert pki/server.pem --key pki/server.key --ca pki/ca.pem
      dicomnet serve --host 0.0.0.0 --port 0 --json    (first line says the port)
      dicomnet serve --allow-aet CT01 --allow-aet MR02 --check-called-aet --aet ARCHIVE
    """
    try:
        allowed = frozenset(check_ae_title(t, "--allow-aet") for t in allow_aets)
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from exc
    with cli_session(net.verbose, default_level=logging.INFO, dated=True):
        tls = command_tls_config(net)  # before the loop: it may ask for the key's password
        with server_output(json_lines=net.json):
            run_async(lambda: _serve(host, net.default_port() if port is None else port, output,
                                     Limits(max_associations=max_associations,
                                            max_associations_per_host=max_per_host,
                                            max_pending_connections=max_pending,
                                            max_async_operations=max_async),
                                     net, tls=tls, duplicates=duplicates, layout=layout,
                                     durable=not no_fsync,
                                     allowed=allowed, check_called=check_called_aet,
                                     unknown_sop_classes=accept_unknown_sop_classes,
                                     operation_timeout=operation_timeout,
                                     idle_timeout=idle_timeout, drain_timeout=drain_timeout,
                                     min_free=min_free),
                      verbose=net.verbose, sigterm_interrupts=True)
