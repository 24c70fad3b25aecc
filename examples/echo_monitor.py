"""Check that DICOM nodes answer: C-ECHO them all at once, each within a deadline,
and print one JSON report (exit 0 when every node answered Success, else 1).

    python examples/echo_monitor.py nodes.json

``nodes.json`` lists the nodes: ``[{"name": "PACS", "host": "pacs.example", "port":
2762, "tls": true}, {"name": "CT01", "host": "10.0.0.7", "port": 104}]``. The TLS
ones use the client certificate and CA of ``--cert``/``--key``/``--ca`` (an
encrypted key's password from the environment variable ``--key-password-env``).
A node that is down, too slow, or whose certificate fails (expired, unknown CA,
wrong host name) is reported with the reason, and the others go on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from dicomnet import DicomNetError, Timeouts, TLSConfig, TLSError, associate


async def check(node: dict[str, Any], tls: TLSConfig | None, deadline: float) -> dict[str, Any]:
    """One node's line of the report; never raises for a node that fails."""
    report: dict[str, Any] = {"name": node["name"], "host": node["host"],
                              "port": node["port"], "ok": False}
    # Each network wait bounded, and the whole check too (a node that trickles).
    timeouts = Timeouts(connect=deadline, tls_handshake=deadline, acse=deadline,
                        dimse=deadline)
    try:
        async with asyncio.timeout(deadline * 2):
            async with associate(node["host"], int(node["port"]), timeouts=timeouts,
                                 tls=tls if node.get("tls") else None,
                                 called_ae_title=node.get("ae_title", "ANY-SCP")) as assoc:
                status = await assoc.echo()
                report.update(ok=status.is_success, status=f"{int(status):04X}")
                info = assoc.security
                if info is not None:
                    report["tls"] = {"protocol": info.protocol, "cipher_suite": info.cipher_suite,
                                     "encryption": info.encryption, "integrity": info.integrity}
    except TLSError as exc:
        report.update(error="tls", reason=exc.reason)
    except DicomNetError as exc:  # not reachable, rejected, aborted, timed out
        report.update(error=type(exc).__name__, reason=str(exc))
    except TimeoutError:
        report.update(error="TimeoutError", reason=f"no answer within {deadline * 2:g}s")
    return report


async def main(args: argparse.Namespace) -> int:
    with open(args.nodes, encoding="utf-8") as file:
        nodes: list[dict[str, Any]] = json.load(file)
    tls = None
    if args.ca is not None:
        password = os.environ.get(args.key_password_env) if args.key_password_env else None
        # One TLSConfig for every node: one context, the key's password asked once.
        tls = TLSConfig(certfile=args.cert, keyfile=args.key, cafile=args.ca,
                        on_private_key_password=(lambda: password or ""))
    reports = await asyncio.gather(*(check(node, tls, args.timeout) for node in nodes))
    json.dump(reports, sys.stdout, indent=2)
    print()
    return 0 if all(report["ok"] for report in reports) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("nodes", help="a JSON file listing the nodes")
    parser.add_argument("--cert", help="our client certificate (PEM)")
    parser.add_argument("--key", help="its private key (PEM)")
    parser.add_argument("--ca", help="the CA certificates we trust for TLS nodes (PEM)")
    parser.add_argument("--key-password-env", help="the environment variable holding the "
                        "key's password, if it is encrypted")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds for each network wait (5)")
    raise SystemExit(asyncio.run(main(parser.parse_args())))
