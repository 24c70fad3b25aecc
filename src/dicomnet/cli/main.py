"""The ``dicomnet`` command group."""

from __future__ import annotations

import click

from dicomnet.cli.certs import certs
from dicomnet.cli.common import EXIT_CODES_EPILOG
from dicomnet.cli.demo import demo
from dicomnet.cli.echo import echo
from dicomnet.cli.serve import serve
from dicomnet.cli.store import store

__all__ = ["main"]


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="\b\nStart here:\n"
    "  dicomnet demo                        the whole secure round trip, in one command\n"
    "  dicomnet certs init pki              a development CA, server and client certificate\n"
    "  dicomnet serve --tls --cert pki/server.pem --key pki/server.key --ca pki/ca.pem\n"
    "  dicomnet echo localhost 2762 --tls --cert pki/client.pem --key pki/client.key "
    "--ca pki/ca.pem\n\n" + EXIT_CODES_EPILOG,
)
@click.version_option(package_name="dicomnet")
def main() -> None:
    """Secure DICOM networking: C-ECHO, C-STORE and a server, over TLS (PS3.15 Annex B).

    Every network command speaks plain DICOM by default and TLS with --tls
    (port 2762). With TLS, certificates are verified and servers require
    client certificates unless told otherwise.
    """


main.add_command(certs)
main.add_command(echo)
main.add_command(store)
main.add_command(serve)
main.add_command(demo)

if __name__ == "__main__":
    main()
