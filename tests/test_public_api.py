"""The public API is what ``dicomnet.__all__`` says, every name in it exists, and
it is loaded lazily (PEP 562): importing dicomnet, or running one ``dicomnet``
command, does not import what that command does not use."""

from __future__ import annotations

import errno
import importlib
import inspect
import re
import socket
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest

import dicomnet

ROOT = Path(__file__).resolve().parent.parent


def test_all_names_exist() -> None:
    missing = [name for name in dicomnet.__all__ if not hasattr(dicomnet, name)]
    assert missing == []


def test_all_is_sorted_and_unique() -> None:
    assert len(set(dicomnet.__all__)) == len(dicomnet.__all__)


def test_no_public_name_left_out() -> None:
    exported = set(dicomnet._EXPORTS) | {"__version__"}
    assert exported == set(dicomnet.__all__)
    assert set(dicomnet.__all__) <= set(dir(dicomnet))
    for name, module in dicomnet._EXPORTS.items():  # each from the module it names
        imported = importlib.import_module(module, "dicomnet")
        assert getattr(dicomnet, name) is (
            imported if module == f".{name}" else getattr(imported, name)), name


def test_the_blocking_facade_after_import_dicomnet_alone() -> None:
    """``import dicomnet`` then ``dicomnet.blocking.store(...)``, as the facade's
    docstring writes it, was an AttributeError (the subpackage never imported);
    it is loaded on first use, as the other names are."""
    code = ("import sys, dicomnet; assert 'dicomnet.blocking' not in sys.modules; "
            "store = dicomnet.blocking.store; from dicomnet.blocking import client; "
            "assert store is client.store; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n", "")


def test_a_server_author_finds_what_the_association_request_hook_takes_and_answers(
        ) -> None:
    """``on_association_request`` is a ``serve()`` argument, but what it receives
    (AssociationInfo), its type and what it answers were not in the public API."""
    from dicomnet.aio import server
    from dicomnet.ul import pdu

    assert dicomnet.AssociationInfo is server.AssociationInfo
    assert dicomnet.AssociationRequestHook is server.AssociationRequestHook
    assert dicomnet.Rejection is pdu.Rejection


def test_a_storage_server_author_can_type_its_handlers_from_dicomnet() -> None:
    """``StorageSCP(on_c_store=..., on_stored=...)`` take a ``StoreHook`` that
    answers a ``HookAnswer`` and a ``StoredObserver``, but those were only in
    dicomnet.services: a typed handler had to import a subpackage."""
    from dicomnet.services import store_answers

    assert dicomnet.StoreHook is store_answers.StoreHook
    assert dicomnet.HookAnswer is store_answers.HookAnswer
    assert dicomnet.StoredObserver is store_answers.StoredObserver
    assert {"StoreHook", "HookAnswer", "StoredObserver"} <= set(dicomnet.__all__)


_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: ``from dicomnet[.module] import a, b`` (over lines after a comma, or in
#: parentheses), in code or in prose.
_IMPORT = re.compile(r"from (dicomnet(?:\.\w+)*) import (\([^)]*\)|\w+(?:,\s*\w+)*)")


def _imports_in_docs() -> list[tuple[str, str, str]]:
    """(document, module, name) of every import from dicomnet the docs show."""
    found = []
    for doc in _DOCS:
        for module, names in _IMPORT.findall(doc.read_text()):
            found += [(doc.name, module, name.strip())
                      for name in names.strip("()").split(",")
                      if name.strip()]
    return found


def test_every_name_the_docs_import_from_dicomnet_is_there() -> None:
    """A user pastes the README's and docs' examples: each name they import from
    dicomnet (or one of its modules) must exist there, and what they import from
    the package itself must be its public API."""
    found = _imports_in_docs()
    assert {module for _, module, _ in found} >= {"dicomnet"}  # the pattern still reads them
    missing = [f"{doc}: from {module} import {name}" for doc, module, name in found
               if not hasattr(importlib.import_module(module), name)
               or (module == "dicomnet" and name not in dicomnet.__all__)]
    assert missing == []


def test_an_unknown_name_is_an_attribute_error() -> None:
    assert not hasattr(dicomnet, "nothing_like_this")


def _modules_after(statement: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"{statement}; import sys; print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True, timeout=60)
    return set(done.stdout.split())


def test_importing_dicomnet_loads_none_of_its_dependencies() -> None:
    loaded = _modules_after("import dicomnet")
    assert not loaded & {"asyncio", "ssl", "pydicom", "cryptography", "sqlite3", "rich", "click"}


def test_the_echo_command_loads_neither_pydicom_nor_the_store_nor_rich() -> None:
    loaded = _modules_after("import dicomnet.cli.main, dicomnet.cli.echo")
    assert {"asyncio", "ssl", "click"} <= loaded  # what echo needs
    assert not loaded & {"pydicom", "sqlite3", "rich", "dicomnet.services.storage",
                         "dicomnet.aio.server"}


def test_an_echo_run_loads_neither_pydicom_nor_the_store_nor_cryptography() -> None:
    """What a whole plain ``dicomnet echo`` loads, association and C-ECHO done (the
    test above only imports the command's module; the client, the DIMSE layer
    and the answer's handling are imported as it runs): no data set reader
    (pydicom), no store, no certificate parsing (cryptography), no server."""
    from dicomnet import VerificationSCP
    from tests.cli.helpers import ServerThread

    server = ServerThread({"providers": [VerificationSCP()]}).start()
    try:
        done = subprocess.run(
            [sys.executable, "-c",
             "import sys\n"
             "from dicomnet.cli.main import main\n"
             "try:\n"
             f"    main(['echo', '127.0.0.1', '{server.port}'])\n"
             "except SystemExit as exc:\n"
             "    print(exc.code, ' '.join(sys.modules))"],
            capture_output=True, text=True, check=True, timeout=60)
    finally:
        server.stop()
    code, *loaded = done.stdout.splitlines()[-1].split()
    assert code == "0", done.stdout + done.stderr
    assert {"dicomnet.aio.client", "dicomnet.dimse.messages", "asyncio"} <= set(loaded)
    assert not set(loaded) & {"pydicom", "sqlite3", "rich", "cryptography",
                              "dicomnet.services.storage", "dicomnet.security.certificates",
                              "dicomnet.aio.server"}


def test_a_tls_context_with_nothing_to_parse_does_not_load_cryptography() -> None:
    """A client with no certificate of its own and no cafile (``echo --tls
    --no-verify``, or the system's CAs) has no certificate to read: building its
    context imported ``cryptography`` (~30 ms) all the same, to ask whether a key
    it does not have is encrypted and to check a cafile it does not have."""
    for config in ("TLSConfig(verify_peer=False)", "TLSConfig()"):
        loaded = _modules_after(
            "import warnings; warnings.simplefilter('ignore'); "
            f"from dicomnet import TLSConfig; {config}.client_context_sync()")
        assert "ssl" in loaded, config
        assert not loaded & {"cryptography", "dicomnet.security.certificates"}, config


def test_the_store_command_with_json_loads_no_rich(tmp_path: Path) -> None:
    """A script's run (``--json``) needs no progress bar or table: rich stays out."""
    from dicomnet.cli.demo import write_synthetic_ct

    write_synthetic_ct(tmp_path / "a.dcm", number=1, study_uid="1.2.3", series_uid="1.2.3.4",
                       size=8)
    with socket.socket() as sock:  # a port nobody listens on: the run fails at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    loaded = _modules_after(
        "from dicomnet.cli.main import main\n"
        "try:\n"
        f"    main(['store', '127.0.0.1', '{port}', {str(tmp_path / 'a.dcm')!r}, '--json'],"
        " standalone_mode=False)\n"
        "except BaseException:\n"
        "    pass")
    assert {"dicomnet.cli.store", "dicomnet.services.store_scu", "asyncio"} <= loaded
    assert "rich" not in loaded


def test_an_application_that_configured_no_logging_hears_nothing_from_the_library() -> None:
    """Python's last-resort handler printed dicomnet's warnings on stderr for an
    application that never asked (the logging HOWTO: libraries add a NullHandler);
    one that configures logging still gets them."""
    code = ("import logging, dicomnet; logging.getLogger('dicomnet.aio').warning('quiet')\n"
            "logging.basicConfig(); logging.getLogger('dicomnet.aio').warning('heard')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stderr == "WARNING:dicomnet.aio:heard\n"


def _undocumented_members(cls: type) -> Iterator[str]:
    """Public methods and properties without a docstring (an override may say
    nothing the base class's docstring says already)."""
    for name, value in vars(cls).items():
        function = value.fget if isinstance(value, property) else value
        if (not name.startswith("_") and inspect.isfunction(function)
                and not inspect.getdoc(getattr(cls, name))):
            yield name


def test_every_public_class_and_its_methods_say_what_they_are() -> None:
    """A user reads ``help(dicomnet.Server)``: every class and function of the
    public API, and each public method and property of its classes, has a
    docstring (a dataclass without one shows its generated signature)."""
    missing = []
    for name in dicomnet.__all__:
        value = getattr(dicomnet, name)
        if inspect.isclass(value):
            doc = value.__dict__.get("__doc__") or ""
            if not doc or doc.startswith(f"{value.__name__}("):
                missing.append(name)
            missing += [f"{name}.{member}" for member in _undocumented_members(value)]
        elif inspect.isfunction(value) and not value.__doc__:
            missing.append(name)
    assert missing == []


def test_every_public_name_that_cannot_have_a_docstring_is_described_in_the_package_one(
        ) -> None:
    """``help(dicomnet)`` listed DEFAULT_PLAIN_PORT, DEFAULT_TLS_PORT, PROFILES and
    AssociationRequestHook under DATA, cut to their values (a constant or a type
    alias has no docstring of its own), and neither README nor docs/ named them:
    the package's docstring, which help() prints first, says what each is."""
    doc = dicomnet.__doc__ or ""
    data = [name for name in dicomnet.__all__
            if not (inspect.isclass(getattr(dicomnet, name))
                    or inspect.isfunction(getattr(dicomnet, name)))]
    assert {"DEFAULT_PLAIN_PORT", "PROFILES", "AssociationRequestHook"} <= set(data)
    assert [name for name in data if f"``{name}``" not in doc] == []


def test_no_public_constructor_or_function_takes_private_or_untyped_arguments() -> None:
    """``Server(...)`` took its private state (``_sock``, ``_tasks``...) as arguments,
    ``ClientAssociation(*args: object, **kwargs: object)`` anything at all."""
    leaks = []
    for name in dicomnet.__all__:
        value = getattr(dicomnet, name)
        if not callable(value) or (isinstance(value, type)
                                   and issubclass(value, Exception | Warning)):
            continue  # exceptions take (*args) as Exception does
        if typing.get_origin(value) is not None or getattr(value, "_is_protocol", False):
            continue  # a type alias (AssociationRequestHook), a Protocol: nothing to call
        for param in inspect.signature(value).parameters.values():
            if param.name.startswith("_") or param.kind in (
                    param.VAR_POSITIONAL, param.VAR_KEYWORD):
                leaks.append(f"{name}: {param}")
    assert leaks == []


def test_every_error_of_the_library_is_in_the_tree_of_dicomnet_errors(tmp_path: Path) -> None:
    """StorageError (a store's folder in use by another server, or that cannot be
    made: what ``StorageSCP(root)`` raises) lived in dicomnet.storage.files, out of
    the one exception tree: neither dicomnet.errors nor dicomnet exported it, and
    the tree drawn in errors.__doc__ did not name it."""
    import dicomnet.errors
    from dicomnet import StorageSCP

    tree = dicomnet.errors.__doc__ or ""
    for name in dicomnet.errors.__all__:
        assert re.search(rf"[─ ]{name}\b", tree), name
        assert getattr(dicomnet, name) is getattr(dicomnet.errors, name), name
    first = StorageSCP(tmp_path / "store")
    try:
        with pytest.raises(dicomnet.errors.StorageError, match="one server per folder"):
            StorageSCP(tmp_path / "store")
    finally:
        first.close()
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(dicomnet.StorageError, match="cannot make the store's folder") as caught:
        StorageSCP(tmp_path / "file" / "store")
    assert caught.value.errno == errno.ENOTDIR


def test_every_callback_type_and_option_enumeration_is_public() -> None:
    """The types a user needs to annotate the callbacks the public API takes (the
    seed's password callback and secure-link event among them) and the enumerations
    of ``StorageSCP``'s options are exported, each the very object its module
    defines: a typed program should not reach into subpackages for them."""
    from dicomnet.aio import server_events, transport
    from dicomnet.security import config
    from dicomnet.services import verification
    from dicomnet.storage import files

    expected = {
        "SecureLinkHook": transport.SecureLinkHook,
        "PasswordCallback": config.PasswordCallback,
        "VerifyCallback": config.VerifyCallback,
        "ConnectionEvent": server_events.ConnectionEvent,
        "ConnectionObserver": server_events.ConnectionObserver,
        "EchoHook": verification.EchoHook,
        "DuplicatePolicy": files.DuplicatePolicy,
        "Layout": files.Layout,
    }
    for name, obj in expected.items():
        assert name in dicomnet.__all__, name
        assert getattr(dicomnet, name) is obj, name
    assert dicomnet.DuplicatePolicy("reject") is files.DuplicatePolicy.REJECT


def _dicomnet_classes(hint: object) -> set[type]:
    """The dicomnet classes a type hint names, unions and generics opened."""
    found = {hint} if isinstance(hint, type) and hint.__module__.startswith("dicomnet.") else set()
    for arg in typing.get_args(hint):
        found |= _dicomnet_classes(arg)
    return found


def test_what_a_script_passes_to_the_entry_points_or_gets_back_can_be_imported_from_dicomnet(
        ) -> None:
    """A typed script names the types it passes and gets back: ``server.drain()``
    returned a DrainOutcome, ``make_dev_pki`` a DevPKI, ``serve(providers=...)``
    takes ServiceProviders and ``associate(user_identity=...)`` a
    UserIdentityRQSubItem, none of them in dicomnet: a helper typed with them
    had to import dicomnet.aio.server and the like. (ClientAssociation's own
    request API, DIMSE messages in and out, stays in dicomnet.dimse.)"""
    from dicomnet import blocking

    entry_points: list[object] = [
        dicomnet.serve, dicomnet.associate, dicomnet.store_paths, dicomnet.make_dev_pki,
        dicomnet.Server.drain, dicomnet.StorageSCP.__init__, dicomnet.VerificationSCP.__init__,
        dicomnet.TLSConfig.__init__, dicomnet.Timeouts.__init__, dicomnet.Limits.__init__,
        blocking.associate, blocking.echo, blocking.store, blocking.BlockingAssociation.store,
    ]
    public = {getattr(dicomnet, name) for name in dicomnet.__all__
              if isinstance(getattr(dicomnet, name), type)}
    public |= {getattr(blocking, name) for name in blocking.__all__}
    # Names some modules import for type checkers only, resolved as mypy would:
    # from every dicomnet module loaded by now.
    known: dict[str, object] = {}
    for name, module in list(sys.modules.items()):
        if name.startswith("dicomnet."):
            known |= {key: value for key, value in vars(module).items()
                      if isinstance(value, type) or key[:1].isupper()}
    missing = sorted({
        f"{cls.__module__}.{cls.__qualname__} ({getattr(entry, '__qualname__', entry)})"
        for entry in entry_points
        for hint in typing.get_type_hints(entry, known | vars(inspect.getmodule(entry))
                                          ).values()
        for cls in _dicomnet_classes(hint) - public})
    assert missing == [], missing
