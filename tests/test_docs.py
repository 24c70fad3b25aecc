"""README.md and docs/security.md keep the promises a user checks first: every exit
code the CLI uses, every serve --json event, how the library runs a server's
handlers, what a profile refuses."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from dicomnet import ConfigurationError, TLSConfig
from dicomnet.cli import exits

README = " ".join((Path(__file__).parent.parent / "README.md").read_text().split())


def test_readme_documents_every_exit_code_the_cli_uses() -> None:
    sentence = README[README.index("The commands exit 0 (success)"):]
    sentence = sentence[:sentence.index(". ")]
    codes = {value for name, value in vars(exits).items()
             if name.startswith("EXIT_") and isinstance(value, int)}
    assert codes == {0, 1, 2, 3, 130, 143}
    for code in codes:
        assert re.search(rf"\b{code} \(", sentence), code


def test_readme_names_every_serve_json_event() -> None:
    """It named listening, stored, stopped and error only."""
    for event in ("listening", "association_accepted", "association_ended",
                  "connection_refused", "stored", "stopped", "error"):
        assert f"`{event}`" in README, event


def test_readme_says_how_serve_stops_on_a_signal() -> None:
    """Since serve drains on SIGTERM (it aborted every association at once)."""
    assert ("That stop drains: `serve` stops accepting (new connections are refused), "
            "lets the associations under way go on to their release for up to "
            "`--drain-timeout` seconds (30; 0 aborts them at once), then aborts those still "
            "open; a second Ctrl-C or SIGTERM aborts them at once, a third quits at once."
            ) in README
    assert "`await server.drain(timeout)`" in README


def test_readme_says_where_a_plain_handler_runs_and_what_results_keeps() -> None:
    """Since handlers moved to worker threads and store_paths gained results=,
    a user of the library learnt neither from the README."""
    assert ("or plain functions, run in a worker thread: those may block (a database, a "
            "request to another node, reading the stored data set) without stalling the "
            "other associations, but several run at once, so what they share must be "
            "thread-safe.") in README
    assert "`store_paths(..., results=[])` fills the caller's empty list" in README
    assert "and `dimse_status`, the same as the `Status` that `assoc.store` returns" in README
    assert ("that has not returned after `Timeouts.operation` (300 s; `serve "
            "--operation-timeout`) ends its association") in README
    assert "works where an event loop already runs" in README


def test_security_guide_says_a_bcp195_client_refuses_dhe() -> None:
    """Since 4e5657e a bcp195 client offers no DHE suite and refuses one listed
    in ciphers; the guide's profile table still read "old peers only; warns"."""
    guide = " ".join((Path(__file__).parent.parent / "docs" / "security.md").read_text().split())
    row = guide[guide.index("| `bcp195` |"):]
    row = row[:row.index(" | `bcp195-non-downgrading`")]
    assert "A client offers no DHE suite" in row
    assert "DHE suites in its `ciphers` are a `ConfigurationError`" in row
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the profile is retired: it warns
        config = TLSConfig(profile="bcp195", ciphers=("DHE-RSA-AES128-GCM-SHA256",))
        with pytest.raises(ConfigurationError, match="DHE"):
            config.client_context_sync()


def test_readme_shows_an_association_request_hook_that_does_what_it_says(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The README never mentioned ``on_association_request``; its example (type-
    checked by tests/test_typing.py) is run here: its hook answers the rejections
    it names, its handler routes by the called AE title and names the peer."""
    from dicomnet import AssociationInfo, AssociationRejected, StoredInstance
    from dicomnet.ul.negotiation import ContextRequest, build_associate_rq

    text = (Path(__file__).parent.parent / "README.md").read_text()
    [block] = [code for code in re.findall(r"^```python\n(.*?)^```", text,
                                           re.MULTILINE | re.DOTALL)
               if "on_association_request=admit" in code]
    example: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), example)  # defines; serves nothing

    def asked(calling: str, called: str) -> object:
        verification = ContextRequest("1.2.840.10008.1.1", ("1.2.840.10008.1.2",))
        rq = build_associate_rq(calling_ae_title=calling, called_ae_title=called,
                                contexts=[verification])
        admit = example["admit"]
        assert callable(admit)
        return admit(AssociationInfo(calling, called, ("10.0.0.7", 50412), rq, None))

    assert asked("CT01", "AI-MR") is None
    stranger = asked("XR09", "AI-CT")
    assert isinstance(stranger, tuple)
    assert str(AssociationRejected(*stranger)).endswith("calling AE title not recognized")
    assert asked("MR02", "PACS") == (1, 1, 7)
    route = example["route"]
    assert callable(route)
    route(StoredInstance(Path("store/1.dcm"), "1.2", "1.2.3", "1.2.840.10008.1.2.1", "CT01",
                         None, False, called_ae_title="AI-MR", peer=("10.0.0.7", 50412)))
    assert capsys.readouterr().out == "mr store/1.dcm from CT01@10.0.0.7\n"


def test_leadtools_mapping_says_a_verify_callback_that_raises_refuses() -> None:
    """Since a raising verify_callback became a refusal (TLSError); the mapping's
    OnVerify row said only when it runs."""
    mapping = " ".join((Path(__file__).parent.parent / "docs" / "leadtools-mapping.md")
                       .read_text().split())
    row = mapping[mapping.index("| `OnVerify` |"):]
    row = row[:row.index(" | DES / 3DES")]
    assert ("False refuses the peer (`TLSError`), and so does a callback that raises (its "
            "exception the `TLSError`'s cause): it fails closed.") in row


def test_readme_says_where_collect_files_comes_from() -> None:
    """It named `collect_files` alone, which `dicomnet` does not export: a reader
    following `store_paths(..., listed=True)` had to search the source for it."""
    import importlib
    import inspect

    found = re.search(r"a `collect_files` call \(`from ([a-z.]+) import collect_files`\)",
                      README)
    assert found, "the README names collect_files without its module"
    module = importlib.import_module(found.group(1))
    from dicomnet import store_paths
    assert "listed" in inspect.signature(store_paths).parameters
    assert callable(module.collect_files)
