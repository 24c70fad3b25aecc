"""``dicomnet certs``: a development PKI, and a look inside a certificate."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import click

from dicomnet.cli import common
from dicomnet.cli.common import (
    CERTS_EXIT_CODES_EPILOG,
    EXIT_USAGE,
    command_name,
    fail,
    print_json,
    prompt_password,
)
from dicomnet.cli.describe import describe_certificate
from dicomnet.errors import ConfigurationError
from dicomnet.security.certificates import (
    CertificateInfo,
    dev_host_name,
    issue_dev_certificate,
    key_is_encrypted,
    make_dev_pki,
    serial_text,
)
from dicomnet.security.revocation import CRL_NAME, revoke_dev_certificates
from dicomnet.security.trust_store import der_certificate

__all__ = ["PKI_FILES", "certs"]

#: Files ``certs init`` writes (ca.key too: it signs, so it is kept but never needed by peers).
PKI_FILES = ("ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key")


@click.group(context_settings={"help_option_names": ["-h", "--help"]},
             short_help="Development certificates: make, issue, inspect.",
             epilog="\b\nExamples:\n"
             "  dicomnet certs init pki\n"
             "  dicomnet certs issue pki orthanc --host-name orthanc.local\n"
             "  dicomnet certs revoke pki orthanc\n"
             "  dicomnet certs show pki/server.pem\n\n" + CERTS_EXIT_CODES_EPILOG)
def certs() -> None:
    """Development certificates: make a small PKI, issue more from it, inspect
    certificates."""


@certs.command("init", epilog=CERTS_EXIT_CODES_EPILOG,
               short_help="Make a development CA, server and client certificate.")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--key-type", type=click.Choice(["rsa", "ecdsa"]), default="rsa", show_default=True,
              help="rsa: RSA 2048; ecdsa: ECDSA P-256 (faster, smaller).")
@click.option("--password-env", metavar="VAR",
              help="Encrypt the private keys with the password in this environment variable.")
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Encrypt the private keys with the password in this file (its first "
                   "line), as serve, echo and store read it with --key-password-file.")
@click.option("--password", "ask_password", is_flag=True,
              help="Encrypt the private keys with a password asked for now.")
@click.option("--days", type=click.IntRange(1, 3650), default=825, show_default=True,
              help="Validity of the server and client certificates.")
@click.option("--server-name", "server_names", multiple=True, metavar="NAME",
              help="DNS name or IP address the server certificate is valid for (repeat). "
                   "Default: localhost and 127.0.0.1.")
@click.option("--force", is_flag=True,
              help="Overwrite existing files; a ca.crl is made again, empty, by the new CA.")
@click.option("--json", "as_json", is_flag=True, help="Print the written paths as JSON.")
def init(*, directory: Path, key_type: str, password_env: str | None,
         password_file: Path | None, ask_password: bool, days: int,
         server_names: tuple[str, ...], force: bool, as_json: bool) -> None:
    """Make a development CA, a server and a client certificate in DIRECTORY.

    Files: ca.pem (trust this), server.pem + server.key, client.pem +
    client.key (and ca.key, which signs them). Keys are mode 0600. For
    development and tests only: production uses your site's PKI.

    \b
    Example:
      dicomnet certs init pki --server-name pacs.local --server-name 10.0.0.5
    """
    names = _host_names("--server-name", server_names) or ("localhost", "127.0.0.1")
    password = _password(password_env, password_file, ask_password, confirm=True)
    existing = [name for name in PKI_FILES if (directory / name).exists()]
    if existing and not force:
        fail(f"{directory} already holds {', '.join(existing)}: refusing to overwrite "
             "(use --force, or another directory)", EXIT_USAGE)
    # What the CA replaced (--force) had made: its CRL, and the certificates issued from it.
    old_crl = (directory / CRL_NAME).is_file()
    orphans = _issued_there(directory) if existing else []
    try:
        pki = make_dev_pki(directory, key_type=key_type,  # type: ignore[arg-type]
                           password=password, server_names=names, days=days)
        if old_crl:  # the old CA's CRL: peers given --crl refused all (signature failure)
            (directory / CRL_NAME).unlink()
            crl: Path | None = revoke_dev_certificates(directory, [], password=password).path
        else:
            crl = None
    except OSError as exc:
        fail(f"cannot write to {directory}: {exc.strerror or exc}", EXIT_USAGE)
    except (ValueError, ConfigurationError) as exc:
        fail(f"cannot make the certificates: {exc}", EXIT_USAGE)
    files = {
        "ca_cert": pki.ca_cert, "ca_key": pki.ca_key, "server_cert": pki.server_cert,
        "server_key": pki.server_key, "client_cert": pki.client_cert,
        "client_key": pki.client_key,
    }
    if as_json:
        print_json({k: str(v) for k, v in files.items()}
                   | {"crl": str(crl) if crl else None,
                      "no_longer_trusted": [str(p) for p in orphans],
                      "key_type": key_type, "encrypted": password is not None,
                      "server_names": list(names), "days": days})
        return
    d = directory
    pw, note = [], ""
    if password_env:
        pw = ["--key-password-env", password_env]
    elif password_file is not None:
        pw = ["--key-password-file", str(password_file)]
    elif password:
        note = " (you will be asked for the key password)"
    click.echo(f"Wrote a development PKI ({key_type.upper()}, valid {days} days) in {d}:")
    for label, path in (("CA certificate (trust it)", pki.ca_cert),
                        ("CA key (keep it private)", pki.ca_key),
                        (f"server certificate ({', '.join(names)})", pki.server_cert),
                        ("server key", pki.server_key),
                        ("client certificate", pki.client_cert),
                        ("client key", pki.client_key)):
        click.echo(f"  {path}  {label}")
    if crl is not None:
        click.echo(f"  {crl}  its certificate revocation list, empty (the previous CA's "
                   "entries went with it)")
    for orphan in orphans:
        click.echo(f"note: {orphan} was issued by the CA this replaced: no peer trusts it "
                   f"now (issue it again: dicomnet certs issue {directory} {orphan.stem} "
                   "--force)")
    dicomnet = command_name()
    # Quoted: pasted, a folder "my pki" must stay one word.
    click.echo("\nNext, in one terminal:")
    click.echo(f"  {dicomnet} " + shlex.join([
        "serve", "--tls", "--cert", str(d / "server.pem"), "--key", str(d / "server.key"),
        "--ca", str(d / "ca.pem"), *pw]) + note)
    # serve listens on 127.0.0.1: the echo goes there, checking a name the certificate
    # holds (one that names this machine as is, else through --server-name).
    local = [n for n in names if n in ("localhost", "127.0.0.1")]
    peer = local[:1] or ["127.0.0.1", "--server-name", names[0]]
    click.echo("and in another:")
    click.echo(f"  {dicomnet} " + shlex.join([
        "echo", peer[0], "2762", *peer[1:], "--tls", "--cert", str(d / "client.pem"),
        "--key", str(d / "client.key"), "--ca", str(d / "ca.pem"), *pw]) + note)


def _host_names(option: str, given: tuple[str, ...]) -> tuple[str, ...]:
    """The names of ``option``, checked before any file is written."""
    try:
        return tuple(dev_host_name(name) for name in given)
    except ConfigurationError as exc:
        fail(f"{option} {exc}", EXIT_USAGE)


def _issued_there(directory: Path) -> list[Path]:
    """The certificates ``certs issue`` wrote in ``directory`` (NAME.pem beside
    NAME.key, but the PKI's own)."""
    return sorted(p for p in directory.glob("*.pem")
                  if p.name not in PKI_FILES and p.with_suffix(".key").is_file())


#: A certificate's file name: no path, nothing hidden.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@certs.command("issue", epilog=CERTS_EXIT_CODES_EPILOG,
               short_help="Issue one more certificate from its CA, for a peer.")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("name")
@click.option("--role", type=click.Choice(["both", "server", "client"]), default="both",
              show_default=True,
              help="Extended key usage: serverAuth, clientAuth, or both (for a peer that "
                   "presents one certificate when it listens and when it connects, as "
                   "Orthanc does).")
@click.option("--host-name", "host_names", multiple=True, metavar="NAME",
              help="DNS name or IP address the certificate is valid for (repeat). "
                   "Default: localhost and 127.0.0.1 (none for --role client). NAME is "
                   "its CN.")
@click.option("--days", type=click.IntRange(1, 3650), default=825, show_default=True,
              help="Validity.")
@click.option("--password-env", metavar="VAR",
              help="The password of ca.key (as `certs init` set it) in this environment "
                   "variable; the new key is encrypted with it too.")
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="The password of ca.key in this file (its first line); the new "
                   "key is encrypted with it too.")
@click.option("--password", "ask_password", is_flag=True,
              help="Ask for the password of ca.key (the new key is encrypted with it too).")
@click.option("--force", is_flag=True, help="Overwrite NAME.pem and NAME.key if they exist.")
@click.option("--json", "as_json", is_flag=True, help="Print the written paths as JSON.")
def issue(*, directory: Path, name: str, role: str, host_names: tuple[str, ...], days: int,
          password_env: str | None, password_file: Path | None, ask_password: bool,
          force: bool, as_json: bool) -> None:
    """Issue one more certificate from the CA that `certs init` made in DIRECTORY:
    writes NAME.pem and NAME.key there.

    For a peer of your dicomnet server or client: a device, a PACS, Orthanc. A
    dicomnet server that requires client certificates (the default) accepts
    only certificates allowing clientAuth from clients, and a client only ones
    allowing serverAuth from servers; --role both allows both.

    \b
    Example (Orthanc's DicomTlsCertificate and DicomTlsPrivateKey):
      dicomnet certs issue pki orthanc --host-name orthanc.local
    """
    if not _SAFE_NAME.fullmatch(name):
        fail(f"NAME {name!r}: letters, digits, '.', '-' and '_' only, at most 64, "
             "starting with a letter or digit", EXIT_USAGE)
    if name == "ca":
        fail("NAME ca: that is the CA's own certificate", EXIT_USAGE)
    for required in ("ca.pem", "ca.key"):
        if not (directory / required).is_file():
            fail(f"{directory} has no {required}: make the PKI first (dicomnet certs init "
                 f"{directory})", EXIT_USAGE)
    existing = [f.name for f in (directory / f"{name}.pem", directory / f"{name}.key")
                if f.exists()]
    if existing and not force:
        fail(f"{directory} already holds {', '.join(existing)}: refusing to overwrite "
             "(use --force, or another NAME)", EXIT_USAGE)
    server, client = role in ("both", "server"), role in ("both", "client")
    names = _host_names("--host-name", host_names) or (
        ("localhost", "127.0.0.1") if server else ())
    encrypted = key_is_encrypted((directory / "ca.key").read_bytes())
    password = _password(password_env, password_file, ask_password, confirm=False)
    if encrypted and password is None:
        fail(f"{directory / 'ca.key'} is encrypted: give --password-env VAR, --password-file "
             "FILE or --password", EXIT_USAGE)
    try:
        cert, key = issue_dev_certificate(directory, name, names=names, server=server,
                                          client=client, days=days, password=password)
    except ConfigurationError as exc:
        fail(str(exc), EXIT_USAGE)
    except OSError as exc:
        fail(f"cannot write to {directory}: {exc.strerror or exc}", EXIT_USAGE)
    except ValueError as exc:
        fail(f"cannot make the certificate: {exc}", EXIT_USAGE)
    info = CertificateInfo.from_pem_file(cert)
    if as_json:
        print_json({"cert": str(cert), "key": str(key), "role": role,
                    "extended_key_usage": list(info.extended_key_usage),
                    "names": list(info.sans), "subject": info.subject, "days": days,
                    "encrypted": password is not None})
        return
    click.echo(f"Wrote {cert} and {key} ({role}: {', '.join(info.extended_key_usage)}; "
               f"{info.subject}; names: {', '.join(info.sans) or '-'}), signed by "
               f"{directory / 'ca.pem'}.")
    click.echo("The peer also needs ca.pem to trust dicomnet's side (its CA file).")


@certs.command("revoke", epilog=CERTS_EXIT_CODES_EPILOG,
               short_help="Revoke certificates of the PKI: write its CRL, ca.crl.")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("certificates", nargs=-1, metavar="NAME|FILE...")
@click.option("--days", type=click.IntRange(1, 3650), default=30, show_default=True,
              help="Validity of the CRL (its nextUpdate): peers refuse it afterwards, so "
                   "run this again, with no certificate, to renew it.")
@click.option("--password-env", metavar="VAR",
              help="The password of ca.key (as `certs init` set it) in this environment "
                   "variable.")
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="The password of ca.key in this file (its first line).")
@click.option("--password", "ask_password", is_flag=True,
              help="Ask for the password of ca.key.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the CRL's path and serials as JSON: crl, revoked, added, "
                   "next_update (serials in upper-case hex, whole bytes, as "
                   "`openssl x509 -serial` and `certs show` print them).")
def revoke(*, directory: Path, certificates: tuple[str, ...], days: int,
           password_env: str | None, password_file: Path | None, ask_password: bool,
           as_json: bool) -> None:
    """Revoke certificates issued by the CA that `certs init` made in DIRECTORY:
    adds them to DIRECTORY/ca.crl (RFC 5280 certificate revocation list, signed by
    the CA; earlier entries stay) and signs it again. Each is NAME (DIRECTORY/NAME.pem,
    as `certs issue` wrote it) or a PEM FILE. With none, the CRL is renewed.

    Give the CRL to the side that checks: `--crl DIRECTORY/ca.crl` to `dicomnet serve`
    (revoked clients are refused) or to `dicomnet echo`/`store` (a revoked server
    is refused). A running server reads the new CRL within seconds, or at SIGHUP.

    \b
    Example:
      dicomnet certs revoke pki client
      dicomnet serve --tls --cert pki/server.pem --key pki/server.key --ca pki/ca.pem \\
          --crl pki/ca.crl
    """
    paths = [directory / f"{c}.pem" if (directory / f"{c}.pem").is_file() else Path(c)
             for c in certificates]
    for path in paths:
        if path.name == "ca.pem" and path.parent == directory:
            fail("ca.pem is the CA itself: revoke what it issued", EXIT_USAGE)
        if not path.is_file():
            fail(_not_found(directory, str(path)), EXIT_USAGE)
    if not (directory / "ca.key").is_file():
        fail(f"{directory} has no ca.key: make the PKI first (dicomnet certs init "
             f"{directory})", EXIT_USAGE)
    password = _password(password_env, password_file, ask_password, confirm=False)
    if key_is_encrypted((directory / "ca.key").read_bytes()) and password is None:
        fail(f"{directory / 'ca.key'} is encrypted: give --password-env VAR, --password-file "
             "FILE or --password", EXIT_USAGE)
    try:
        crl = revoke_dev_certificates(directory, paths, password=password, days=days)
    except ConfigurationError as exc:
        fail(str(exc), EXIT_USAGE)
    if as_json:
        print_json({"crl": str(crl.path), "revoked": [serial_text(s) for s in crl.serials],
                    "added": [serial_text(s) for s in crl.added],
                    "next_update": crl.next_update.isoformat(timespec="seconds")})
        return
    added = ", ".join(serial_text(s) for s in crl.added) or "none"
    click.echo(f"Wrote {crl.path}: {len(crl.serials)} certificate(s) revoked (added now: "
               f"{added}), valid until {crl.next_update:%Y-%m-%d %H:%M} UTC.")
    click.echo(f"Give it to the side that checks: --crl {shlex.quote(str(crl.path))}")


def _not_found(directory: Path, given: str) -> str:
    """Why ``certs revoke`` found no certificate ``given``: where it looked, and the
    NAMEs that ``directory`` holds (its PEM files but the CA's)."""
    if _SAFE_NAME.fullmatch(given):
        looked = f"no file {directory / f'{given}.pem'} (NAME) nor {given} (FILE)"
    else:
        looked = "no such file"
    names = sorted(p.stem for p in directory.glob("*.pem") if p.name != "ca.pem")
    if names:
        return f"no certificate {given}: {looked}; the names in {directory}: {', '.join(names)}"
    return (f"no certificate {given}: {looked}; {directory} holds no certificate but the "
            "CA's (certs issue makes one)")


def _password(password_env: str | None, password_file: Path | None, ask: bool, *,
              confirm: bool) -> str | None:
    """The password from --password-env VAR, --password-file FILE (its first line) or
    asked for on the terminal (--password), or None."""
    if sum((bool(password_env), password_file is not None, ask)) > 1:
        raise click.UsageError("give one of --password-env, --password-file and --password")
    if password_env:
        password = os.environ.get(password_env)
        if not password:
            raise click.UsageError(f"--password-env {password_env}: that variable is not set")
        return password
    if password_file is not None:
        try:
            password = common._first_line(password_file, "--password-file")
        except ConfigurationError as exc:
            fail(str(exc), EXIT_USAGE)
        if not password:
            fail(f"--password-file {password_file}: its first line is empty", EXIT_USAGE)
        return password
    if ask:
        if not common._stdin_is_tty():  # getpass would warn, and read a pipe anyway
            fail("--password asks on a terminal, and there is none: give --password-env VAR "
                 "or --password-file FILE", EXIT_USAGE)
        return prompt_password("Password for the private keys", confirm=confirm)
    return None


@certs.command("show", epilog=CERTS_EXIT_CODES_EPILOG,
               short_help="Show a certificate: subject, names, validity, fingerprint.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True,
              help="Print the details as JSON (serial in upper-case hex, whole bytes, as "
                   "`openssl x509 -serial` and `certs revoke` print it).")
def show(*, file: Path, as_json: bool) -> None:
    """Show the first certificate of a PEM FILE (or a DER one, a Windows .cer): subject,
    issuer, names, validity, fingerprint.

    \b
    Example:
      dicomnet certs show pki/server.pem --json
    """
    try:
        der = der_certificate(file.read_bytes())
        info = CertificateInfo.from_x509(der) if der else CertificateInfo.from_pem_file(file)
    except (ValueError, IndexError):
        fail(f"{file} holds no PEM certificate (nor a DER one)", EXIT_USAGE)
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}", EXIT_USAGE)
    if as_json:
        print_json(info.to_dict())
        return
    click.echo(f"{file}: {'CA certificate' if info.is_ca else 'certificate'}")
    click.echo("\n".join(describe_certificate(info)))
    click.echo(f"  {'serial':<11} {info.serial_hex}")
    click.echo(f"  {'signature':<11} {info.signature_hash or '-'}")
