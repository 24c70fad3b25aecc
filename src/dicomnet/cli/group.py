"""The ``dicomnet`` command group (run by :func:`dicomnet.cli.main.main`)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

import click

from dicomnet.cli.exits import EXIT_CODES_EPILOG, EXIT_USAGE, interruption, json_promise
from dicomnet.cli.output import say_error

__all__ = ["cli"]

#: Command name -> the module defining it (as a function of the same name), and
#: its short help. Each module is imported when its command runs: ``dicomnet
#: echo`` does not load the store's progress bars nor the server, and ``dicomnet
#: --help`` lists them from here, loading none (the server's brought in pydicom
#: and SQLite: a third of a second). A test checks these lines are the commands'.
_COMMANDS: dict[str, tuple[str, str]] = {
    "certs": ("dicomnet.cli.certs", "Development certificates: make, issue, inspect."),
    "echo": ("dicomnet.cli.echo", "Verify a peer with C-ECHO; show what TLS negotiated."),
    "store": ("dicomnet.cli.store", "Send DICOM files and folders with C-STORE."),
    "serve": ("dicomnet.cli.serve", "Run a DICOM server: C-ECHO, and C-STORE into --output."),
    "reindex": ("dicomnet.cli.reindex", "Make a store's index agree with its files."),
    "demo": ("dicomnet.cli.demo", "Show the secure round trip on this machine, in one command."),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS:
            return None
        module, _ = _COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), cmd_name)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The list of commands in ``--help``, from :data:`_COMMANDS` (click's own
        imports every command to ask it its short help)."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in _COMMANDS.items()])

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        """click's standalone mode, but every way out is ours to report.

        A Ctrl-C outside a command's network work (loading it, printing its
        summary) exits 130 like one during it, SIGTERM 143: click said "Aborted!"
        and exited 1, which here means a peer's failure status. With ``--json``
        anywhere on the command line, a usage error (exit 2), like every other
        end, leaves one JSON document on stdout (see ``JsonPromise``); click's
        text still goes to stderr."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        with json_promise(argv) as promise:
            try:
                # Not standalone: an int is the code of a click.exceptions.Exit
                # (--help, --version); our commands return None.
                code = super().main(argv, prog_name, complete_var, False, **extra)
            except click.ClickException as exc:
                promise.keep(exc.exit_code, exc.format_message())
                exc.show()
                sys.exit(exc.exit_code)
            except click.Abort as exc:  # click's word for a KeyboardInterrupt or EOFError
                if isinstance(exc.__cause__, KeyboardInterrupt):
                    message, code = interruption(exc.__cause__)
                else:
                    message, code = "no input (end of file)", EXIT_USAGE
                say_error(message)
                promise.keep(code, message)
                sys.exit(code)
            except SystemExit as exc:
                if isinstance(exc.code, int):
                    promise.keep(exc.code)
                raise
            code = code if isinstance(code, int) else 0
            promise.keep(code)
        sys.exit(code)


@click.group(
    name="dicomnet",
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="\b\nStart here:\n"
    "  dicomnet demo                        the whole secure round trip, in one command\n"
    "  dicomnet certs init pki              a development CA, server and client certificate\n"
    "  dicomnet serve --tls --cert pki/server.pem --key pki/server.key --ca pki/ca.pem\n"
    "  dicomnet echo localhost 2762 --tls --cert pki/client.pem --key pki/client.key "
    "--ca pki/ca.pem\n\n" + EXIT_CODES_EPILOG
    + "\n  serve exits 0 when Ctrl-C or SIGTERM stops it (dicomnet serve --help)",
)
@click.version_option(package_name="dicomnet")
def cli() -> None:
    """Secure DICOM networking: C-ECHO, C-STORE and a server, over TLS (PS3.15 Annex B).

    Every network command speaks plain DICOM by default and TLS with --tls
    (port 2762). With TLS, certificates are verified and servers require
    client certificates unless told otherwise.
    """
