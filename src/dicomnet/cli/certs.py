"""``dicomnet certs``: a development PKI, and a look inside a certificate."""

from __future__ import annotations

import os
from pathlib import Path

import click

from dicomnet.cli.common import EXIT_USAGE, fail, print_json
from dicomnet.cli.echo import describe_certificate
from dicomnet.security.certificates import CertificateInfo, make_dev_pki

__all__ = ["PKI_FILES", "certs"]

#: Files ``certs init`` writes (ca.key too: it signs, so it is kept but never needed by peers).
PKI_FILES = ("ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def certs() -> None:
    """Development certificates: make a small PKI, inspect certificates."""


@certs.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--key-type", type=click.Choice(["rsa", "ecdsa"]), default="rsa", show_default=True,
              help="rsa: RSA 2048; ecdsa: ECDSA P-256 (faster, smaller).")
@click.option("--password-env", metavar="VAR",
              help="Encrypt the private keys with the password in this environment variable.")
@click.option("--password", "ask_password", is_flag=True,
              help="Encrypt the private keys with a password asked for now.")
@click.option("--days", type=click.IntRange(1, 3650), default=825, show_default=True,
              help="Validity of the server and client certificates.")
@click.option("--server-name", "server_names", multiple=True, metavar="NAME",
              help="DNS name or IP address the server certificate is valid for (repeat). "
                   "Default: localhost and 127.0.0.1.")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@click.option("--json", "as_json", is_flag=True, help="Print the written paths as JSON.")
def init(*, directory: Path, key_type: str, password_env: str | None, ask_password: bool,
         days: int, server_names: tuple[str, ...], force: bool, as_json: bool) -> None:
    """Make a development CA, a server and a client certificate in DIRECTORY.

    Files: ca.pem (trust this), server.pem + server.key, client.pem +
    client.key (and ca.key, which signs them). Keys are mode 0600. For
    development and tests only: production uses your site's PKI.

    \b
    Example:
      dicomnet certs init pki --server-name pacs.local --server-name 10.0.0.5
    """
    if password_env and ask_password:
        raise click.UsageError("give --password-env or --password, not both")
    password: str | None = None
    if password_env:
        password = os.environ.get(password_env)
        if not password:
            raise click.UsageError(f"--password-env {password_env}: that variable is not set")
    elif ask_password:
        password = str(click.prompt("Password for the private keys", hide_input=True,
                                    confirmation_prompt=True, err=True))
    existing = [name for name in PKI_FILES if (directory / name).exists()]
    if existing and not force:
        fail(f"{directory} already holds {', '.join(existing)}: refusing to overwrite "
             "(use --force, or another directory)", EXIT_USAGE)
    names = server_names or ("localhost", "127.0.0.1")
    try:
        pki = make_dev_pki(directory, key_type=key_type,  # type: ignore[arg-type]
                           password=password, server_names=names, days=days)
    except OSError as exc:
        fail(f"cannot write to {directory}: {exc.strerror or exc}", EXIT_USAGE)
    except ValueError as exc:
        fail(f"cannot make the certificates: {exc}", EXIT_USAGE)
    files = {
        "ca_cert": pki.ca_cert, "ca_key": pki.ca_key, "server_cert": pki.server_cert,
        "server_key": pki.server_key, "client_cert": pki.client_cert,
        "client_key": pki.client_key,
    }
    if as_json:
        print_json({k: str(v) for k, v in files.items()}
                   | {"key_type": key_type, "encrypted": password is not None,
                      "server_names": list(names), "days": days})
        return
    d = directory
    pw = ""
    if password_env:
        pw = f" --key-password-env {password_env}"
    elif password:
        pw = " (you will be asked for the key password)"
    click.echo(f"Wrote a development PKI ({key_type.upper()}, valid {days} days) in {d}:")
    for label, path in (("CA certificate (trust it)", pki.ca_cert),
                        ("CA key (keep it private)", pki.ca_key),
                        (f"server certificate ({', '.join(names)})", pki.server_cert),
                        ("server key", pki.server_key),
                        ("client certificate", pki.client_cert),
                        ("client key", pki.client_key)):
        click.echo(f"  {path}  {label}")
    click.echo("\nNext, in one terminal:")
    click.echo(f"  dicomnet serve --tls --cert {d / 'server.pem'} --key {d / 'server.key'} "
               f"--ca {d / 'ca.pem'}{pw}")
    click.echo("and in another:")
    click.echo(f"  dicomnet echo {names[0]} 2762 --tls --cert {d / 'client.pem'} "
               f"--key {d / 'client.key'} --ca {d / 'ca.pem'}{pw}")


@certs.command("show")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the details as JSON.")
def show(*, file: Path, as_json: bool) -> None:
    """Show the first certificate of a PEM FILE: subject, issuer, names, validity, fingerprint."""
    try:
        info = CertificateInfo.from_pem_file(file)
    except (ValueError, IndexError):
        fail(f"{file} holds no PEM certificate", EXIT_USAGE)
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}", EXIT_USAGE)
    if as_json:
        print_json(info.to_dict())
        return
    click.echo(f"{file}: {'CA certificate' if info.is_ca else 'certificate'}")
    click.echo("\n".join(describe_certificate(info)))
    click.echo(f"  {'serial':<11} {info.serial:X}")
    click.echo(f"  {'signature':<11} {info.signature_hash or '-'}")
