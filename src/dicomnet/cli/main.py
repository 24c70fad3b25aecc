"""The ``dicomnet`` command group."""

from __future__ import annotations

import importlib

import click

from dicomnet.cli.common import EXIT_CODES_EPILOG, EXIT_INTERRUPTED, fail

__all__ = ["main"]

#: Command name -> the module defining it (as a function of the same name). Each is
#: imported when it runs or is listed: ``dicomnet echo`` does not load the store's
#: progress bars nor the server, and ``--help`` loads no command's dependencies.
_COMMANDS = {name: f"dicomnet.cli.{name}"
             for name in ("certs", "echo", "store", "serve", "reindex", "demo")}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = _COMMANDS.get(cmd_name)
        if module is None:
            return None
        command = getattr(importlib.import_module(module), cmd_name)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> object:
        """A Ctrl-C outside a command's network work (loading it, printing its
        summary) exits 130 like one during it; click would say "Aborted!" and
        exit 1, which here means a peer's failure status."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            fail("interrupted", EXIT_INTERRUPTED)


@click.group(
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
def main() -> None:
    """Secure DICOM networking: C-ECHO, C-STORE and a server, over TLS (PS3.15 Annex B).

    Every network command speaks plain DICOM by default and TLS with --tls
    (port 2762). With TLS, certificates are verified and servers require
    client certificates unless told otherwise.
    """


if __name__ == "__main__":
    main()
