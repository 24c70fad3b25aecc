"""``dicomnet echo``: C-ECHO (Verification, PS3.7 9.1.5), and what TLS negotiated."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from dicomnet.aio.client import associate
from dicomnet.cli.common import (
    EXIT_CODES_EPILOG,
    EXIT_FAILURE_STATUS,
    EXIT_OK,
    NetworkOptions,
    cli_session,
    command_tls_config,
    is_interruption,
    network_options,
    print_json,
    printable,
    run_async,
)
from dicomnet.cli.describe import describe_certificate, describe_security
from dicomnet.dimse.status import Status
from dicomnet.security.config import TLSConfig
from dicomnet.security.info import SecurityInfo

if TYPE_CHECKING:
    from dicomnet.aio.transport import SecureLinkEvent

__all__ = ["describe_certificate", "describe_security", "echo"]


@dataclass
class EchoOutcome:
    """What one run of C-ECHOs found (so far, if it did not end)."""

    peer: str
    statuses: list[Status] = field(default_factory=list)
    rtts_ms: list[float] = field(default_factory=list)
    #: None until the association is accepted.
    associate_ms: float | None = None
    security: SecurityInfo | None = None

    @property
    def worst(self) -> Status | None:
        """The first non-success status, else the last one; None before any answer."""
        return next((s for s in self.statuses if not s.is_success),
                    self.statuses[-1] if self.statuses else None)

    def on_secure_link(self, event: SecureLinkEvent) -> None:
        """What TLS negotiated, known before the association (if it fails)."""
        if event.info is not None:
            self.security = event.info

    def to_json(self, net: NetworkOptions, count: int, *, exit_code: int,
                error: str | None = None) -> dict[str, Any]:
        """The ``--json`` document: the same keys whether the run ended, failed
        (``error``) or was interrupted, null for what was not reached."""
        worst = self.worst
        return {
            "status": int(worst) if worst is not None else None,
            "status_text": worst.description if worst is not None else None,
            "status_category": worst.category if worst is not None else None,
            "peer": self.peer,
            "calling_aet": net.aet,
            "called_aet": net.called_aet,
            "tls": self.security.to_dict() if self.security else None,
            "associate_ms": (round(self.associate_ms, 3) if self.associate_ms is not None
                             else None),
            "rtt_ms": (round(sum(self.rtts_ms) / len(self.rtts_ms), 3) if self.rtts_ms
                       else None),
            "rtts_ms": [round(r, 3) for r in self.rtts_ms],
            "count": count,
            "interrupted": is_interruption(exit_code),
            "error": error,
            "exit_code": exit_code,
        }


async def _run(host: str, port: int, count: int, net: NetworkOptions,
               tls: TLSConfig | None, *, outcome: EchoOutcome) -> None:
    """The C-ECHOs, each answer noted in ``outcome`` as it comes (a failure
    or a Ctrl-C later leaves what was done to report)."""
    start = time.perf_counter()
    async with associate(
        host, port, calling_ae_title=net.aet, called_ae_title=net.called_aet, tls=tls,
        timeouts=net.timeouts(), on_secure_link_ready=outcome.on_secure_link,
    ) as assoc:
        outcome.associate_ms = (time.perf_counter() - start) * 1000
        outcome.security = assoc.security
        for _ in range(count):
            sent = time.perf_counter()
            status = await assoc.echo()
            outcome.rtts_ms.append((time.perf_counter() - sent) * 1000)
            outcome.statuses.append(status)


@click.command(epilog=EXIT_CODES_EPILOG,
               short_help="Verify a peer with C-ECHO; show what TLS negotiated.")
@click.argument("host")
@click.argument("port", type=click.IntRange(1, 65535), required=False)
@click.option("--count", "-c", type=click.IntRange(min=1), default=1, show_default=True,
              help="C-ECHOs to send on the one association.")
@network_options("client")
def echo(*, host: str, port: int | None, count: int, net: NetworkOptions) -> None:
    """Verify a DICOM peer with C-ECHO and show what the secure link negotiated.

    PORT defaults to 2762 with --tls, else 11112.

    With --json, one document on stdout whatever happens (a usage error, a
    failed connection, TLS handshake or association, Ctrl-C): "error" and
    "exit_code" say how the run ended, and what was not reached is null:

    \b
      status, status_text,  the worst answer (the first that is not Success,
      status_category       else the last): its code (0 is Success), meaning,
                            and success, warning, failure or cancel
      peer, calling_aet, called_aet
      tls                   what TLS negotiated, as the text's "TLS" part
                            shows it (protocol, cipher_suite, key_exchange, encryption,
                            integrity, peer_certificates, local_certificate,
                            alpn, sni, session_resumed...); null on plain DICOM
      associate_ms          how long the association took to set up
      rtt_ms, rtts_ms       the C-ECHOs' mean round trip, and each one's
      count                 --count
      interrupted           true after Ctrl-C or SIGTERM
      error, exit_code      the error line (null on success), the exit status

    \b
    Examples:
      dicomnet echo pacs.example.org 11112 --called-aet PACS
      dicomnet echo localhost --tls --ca pki/ca.pem --cert pki/client.pem --key pki/client.key
      dicomnet echo pacs.example.org --tls --ca site-ca.pem --count 5 --json
          (a server that asks for no client certificate)
    """
    port = port or net.default_port()
    outcome = EchoOutcome(peer=f"{host}:{port}")

    def on_exit(message: str, code: int) -> None:
        if net.json:  # a script reads one document, whatever happened
            print_json(outcome.to_json(net, count, exit_code=code, error=message))

    with cli_session(net.verbose):
        tls = command_tls_config(net, on_exit)  # before the loop: it may ask a password
        run_async(lambda: _run(host, port, count, net, tls, outcome=outcome), verbose=net.verbose,
                  on_exit=on_exit, sigterm_interrupts=True)
    worst = outcome.worst
    assert worst is not None  # the run ended: every C-ECHO was answered
    code = EXIT_OK if worst.is_success else EXIT_FAILURE_STATUS
    if net.json:
        print_json(outcome.to_json(net, count, exit_code=code))
    else:
        for i, (status, ms) in enumerate(zip(outcome.statuses, outcome.rtts_ms, strict=True)):
            colour = "green" if status.is_success else "red"
            label = f"C-ECHO {i + 1}/{count}" if count > 1 else "C-ECHO"
            click.echo(
                f"{label} {net.aet} -> {net.called_aet}@{outcome.peer}: "
                + click.style(f"{status.description} (0x{int(status):04X})", fg=colour)
                + f", round trip {ms:.1f} ms"
            )
        security = (f"TLS ({outcome.security.protocol})" if outcome.security
                    else "plain DICOM, not encrypted")
        click.echo(f"association set up in {outcome.associate_ms or 0:.1f} ms over {security}")
        if outcome.security is not None:
            click.echo("TLS")
            click.echo("\n".join(map(printable, describe_security(outcome.security))))
    if code != EXIT_OK:
        raise SystemExit(code)
