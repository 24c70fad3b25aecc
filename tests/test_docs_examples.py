"""Every `dicomnet ...` command line the README and the guides show names only options
its command has, and the README's summary of the network tools' flags is theirs:
a new user copies these lines as they are (session 29 followed the docs literally)."""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable
from pathlib import Path

import click
import pytest

from dicomnet.cli.group import cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["README.md", "docs/storage.md", "docs/security.md", "docs/leadtools-mapping.md"]
COMMAND = re.compile(r"\bdicomnet ((?:certs )?[a-z]+)\b([^`#\n]*)")


def _command(name: str) -> click.Command:
    ctx = click.Context(cli)
    group, _, sub = name.partition(" ")
    command = cli.get_command(ctx, group)
    assert command is not None, name
    if sub:
        assert isinstance(command, click.Group), name
        command = command.get_command(click.Context(command), sub)
        assert command is not None, name
    return command


def _options(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)
            if opt.startswith("-")} | {"--help", "-h"}


def _shown_commands() -> list[tuple[str, str, str]]:
    """(document, command, its arguments) for each `dicomnet CMD ...` in a code block
    or a code span of the documents (a line continued with a backslash joined)."""
    found = []
    for doc in DOCS:
        text = (ROOT / doc).read_text().replace("\\\n", " ")
        spans = re.findall(r"^```[a-z]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
        spans += re.findall(r"(?<!`)`([^`\n]+)`(?!`)", re.sub(
            r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL))
        for span in spans:
            for name, args in COMMAND.findall(span):
                if name.split()[0] in {"certs", "serve", "echo", "store", "reindex", "demo"}:
                    found.append((doc, name, args))
    return found


def test_the_docs_show_many_command_lines() -> None:
    shown = _shown_commands()
    assert len(shown) >= 20
    assert {name for _, name, _ in shown} >= {
        "certs init", "certs issue", "certs revoke", "serve", "echo", "store", "reindex"}


@pytest.mark.parametrize(("doc", "name", "args"), _shown_commands())
def test_each_command_line_shown_names_options_its_command_has(doc: str, name: str,
                                                              args: str) -> None:
    options = _options(_command(name))
    for token in re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", args):
        assert token in options, f"{doc}: dicomnet {name}{args}: {token}"


def _flags(sentence: str) -> set[str]:
    return set(re.findall(r"`(--[a-z-]+)", sentence.replace("/--", "` `--")))


def test_the_readme_names_the_flags_each_network_tool_has() -> None:
    """It listed the TLS flags every tool takes without --allow-ca-peer-cert, and
    the clients' own without --hostname-from-cn."""
    readme = " ".join((ROOT / "README.md").read_text().split())
    sentence = readme[readme.index("Every network tool takes the same TLS flags"):]
    common, rest = sentence.split("; the server", 1)
    server, rest = rest.split(", the clients", 1)
    clients = rest.split(". All of them", 1)[0]
    serve, echo, store = (_options(_command(name)) for name in ("serve", "echo", "store"))
    not_tls = {"--aet", "--timeout", "--json", "--verbose", "-v", "--help", "-h"}
    tls_common = {flag for flag in serve & echo & store if flag not in not_tls}
    assert _flags(common) == tls_common - {"--no-tls"}
    assert _flags(server) == {"--peer-cert"}
    assert _flags(clients) == (echo & store) - serve - {"--called-aet"}


def _api() -> dict[str, Callable[..., object]]:
    import dicomnet
    from dicomnet.services.storage import store_paths

    names = ("StorageSCP", "TLSConfig", "Timeouts", "Limits", "VerificationSCP", "serve",
             "associate")
    return {**{name: getattr(dicomnet, name) for name in names}, "store_paths": store_paths}


def _text() -> str:
    return "\n".join((ROOT / doc).read_text() for doc in DOCS)


def test_each_keyword_the_docs_pass_is_a_parameter_of_that_call() -> None:
    """`StorageSCP(on_stored=...)`, `serve(on_connection_event=...)`, `TLSConfig(...)`:
    a renamed parameter would leave the docs showing a call that raises TypeError."""
    api = _api()
    calls = re.findall(r"`(\w+)\(([^`]*=[^`]*)\)`", _text())
    checked = 0
    for name, args in calls:
        if name not in api:
            continue
        parameters = inspect.signature(api[name]).parameters
        for keyword in re.findall(r"(?:^|[(,]\s*)(\w+)=", args):
            assert keyword in parameters, f"{name}({keyword}=...)"
            checked += 1
    assert checked >= 25


def test_each_limits_and_timeouts_field_the_docs_name_exists() -> None:
    from dicomnet import Limits, Timeouts

    named = re.findall(r"`(Limits|Timeouts)\.(\w+)`", _text())
    assert len(named) >= 6
    for cls, field in named:
        assert field in {f.name for f in dataclasses.fields(Limits if cls == "Limits"
                                                            else Timeouts)}, (cls, field)


def test_the_readme_shows_how_to_propose_a_data_set_s_sop_class(tmp_path: Path) -> None:
    """It said a data set made in memory goes "on an open association proposed for
    its SOP Class" and never how to propose one: the contexts= it now shows is run
    as written, and the data set stored through it."""
    import asyncio

    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    from dicomnet import ContextRequest, StorageSCP, associate, serve
    from tests.storage.helpers import make_dataset

    readme = " ".join((ROOT / "README.md").read_text().split())
    [shown] = re.findall(r"`async with associate\(host, port, (contexts=\[.*?\])\) as assoc`",
                         readme)
    ds = make_dataset()
    contexts = eval(shown.removeprefix("contexts="), {  # the README's own text
        "ContextRequest": ContextRequest, "ds": ds, "ExplicitVRLittleEndian":
        ExplicitVRLittleEndian, "ImplicitVRLittleEndian": ImplicitVRLittleEndian})

    async def main() -> int:
        async with (await serve(host="127.0.0.1", port=0,
                                providers=[StorageSCP(tmp_path / "store")]) as server,
                    associate("127.0.0.1", server.port, contexts=contexts) as assoc):
            return int(await assoc.store(ds))

    assert asyncio.run(main()) == 0
    assert [p.name for p in (tmp_path / "store").rglob("*.dcm")] == [
        f"{ds.SOPInstanceUID}.dcm"]
