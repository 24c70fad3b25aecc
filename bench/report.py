"""store_bench.py's report: the rate table with each figure as a ratio to DCMTK,
the issue's targets with their verdicts, and the CPU table, as Markdown lines.

A sibling script's module (bench/ is no package): store_bench imports it.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from store_bench import Case, Measurement, Variant

__all__ = ["cpu_table", "fmt", "on_disk_table", "table", "targets"]


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "FAIL"
    if unit == "obj/s" or value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}"


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or base == 0:
        return "n/a"
    return f"{value / base:.2f}x"


def table(results: dict[tuple[str, str, str], Measurement], transports: Sequence[str],
          variants: Sequence[Variant], all_cases: Sequence[Case]) -> str:
    images, large, small = all_cases
    lines: list[str] = []
    for transport in transports:
        title = ("TLS 1.3, mutual authentication" if transport == "tls" else "plain TCP")
        lines += [
            f"### {title}",
            "",
            f"| stack | {images.label} MB/s | vs DCMTK | {large.label} MB/s | vs DCMTK "
            f"| vs DCMTK +B | {small.label} obj/s | vs DCMTK | SCP peak RSS, "
            f"{large.label.split(' x ')[1]} case |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]

        def get(variant: str, case: Case, transport: str = transport) -> float | None:
            m = results.get((transport, variant, case.name))
            return m.rate(case.unit) if m is not None else None

        for v in variants:
            if (transport, v.key, images.name) not in results:
                continue
            peak = results[(transport, v.key, large.name)].peak_mb
            cells = [
                v.label,
                fmt(get(v.key, images), "MB/s"),
                _ratio(get(v.key, images), get("dcmtk", images)),
                fmt(get(v.key, large), "MB/s"),
                _ratio(get(v.key, large), get("dcmtk", large)),
                _ratio(get(v.key, large), get("dcmtk+B", large)),
                fmt(get(v.key, small), "obj/s"),
                _ratio(get(v.key, small), get("dcmtk", small)),
                f"{peak:.0f} MB" if peak is not None else "n/a",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        py_small = results.get((transport, "pynetdicom", small.name))
        if py_small is not None and py_small.count != small.count:
            lines += [f"pynetdicom's small-object rate is measured on its first "
                      f"{py_small.count} objects (one association), to bound the run time.", ""]
        if (transport, "dicomnet", images.name) in results:
            lines += targets(results, transport, all_cases)
        lines += on_disk_table(results, transport, variants, all_cases)
        lines += cpu_table(results, transport, variants, all_cases)
    return "\n".join(lines)


def cpu_table(results: dict[tuple[str, str, str], Measurement], transport: str,
              variants: Sequence[Variant], all_cases: Sequence[Case]) -> list[str]:
    """CPU seconds per run (medians), server / client, start-up excluded: on this
    2-core machine both processes share two CPUs, so their sum bounds the rate."""
    head = " | ".join(f"{c.label}: server / client / sum" for c in all_cases)
    out = [f"CPU seconds per run ({transport}, medians, start-up excluded):", "",
           f"| stack | {head} |", "|---|" + "---:|" * len(all_cases)]
    for v in variants:
        cells = [v.label]
        for case in all_cases:
            m = results.get((transport, v.key, case.name))
            if m is None or not m.ok or not m.client_cpu:
                cells.append("n/a")
                continue
            server, client = statistics.median(m.server_cpu), statistics.median(m.client_cpu)
            cells.append(f"{server:.2f} / {client:.2f} / {server + client:.2f}")
        if any(cell != "n/a" for cell in cells[1:]):
            out.append("| " + " | ".join(cells) + " |")
    return [*out, ""]


#: Each case's base for the ratios: the issue's (DCMTK +B for the large objects).
_BASE = {"images": "dcmtk", "large": "dcmtk+B", "small": "dcmtk"}


def on_disk_table(results: dict[tuple[str, str, str], Measurement], transport: str,
                  variants: Sequence[Variant], all_cases: Sequence[Case]) -> list[str]:
    """The rates until what the server received is on its disk: each run's time
    plus the ``sync`` started as its SCU was done (medians), beyond the issue.
    dicomnet answers Success once its files are durable; DCMTK and pynetdicom
    leave what they received in the page cache, which ``sync`` writes back."""
    bases = {"dcmtk": "DCMTK", "dcmtk+B": "DCMTK +B"}
    head = " | ".join(f"{c.label} {c.unit} | vs {bases[_BASE[c.name]]} | sync s"
                      for c in all_cases)
    out = [f"Until the data is on disk ({transport}; each run, then `sync`; medians; "
           "beyond the issue):", "",
           f"| stack | {head} |", "|---|" + "---:|" * (3 * len(all_cases))]
    for v in variants:
        cells = [v.label]
        for case in all_cases:
            m = results.get((transport, v.key, case.name))
            base = results.get((transport, _BASE[case.name], case.name))
            rate = m.rate(case.unit, on_disk=True) if m is not None else None
            against = base.rate(case.unit, on_disk=True) if base is not None else None
            cells += [fmt(rate, case.unit) if m is not None else "n/a", _ratio(rate, against),
                      f"{statistics.median(m.sync_seconds):.3f}"
                      if m is not None and rate is not None else "n/a"]
        if any(cell != "n/a" for cell in cells[1:]):
            out.append("| " + " | ".join(cells) + " |")
    return [*out, ""]


def targets(results: dict[tuple[str, str, str], Measurement], transport: str,
            all_cases: Sequence[Case]) -> list[str]:
    images, large, small = all_cases

    def rate(variant: str, case: Case) -> float | None:
        m = results.get((transport, variant, case.name))
        return m.rate(case.unit) if m is not None else None

    def check(name: str, case: Case, base: str, goal: float) -> str:
        value, against = rate("dicomnet", case), rate(base, case)
        if value is None or against is None:
            return f"- {name}: not measured"
        ratio = value / against
        line = f"- {name}: {ratio:.2f}x (target >= {goal}x) {'met' if ratio >= goal else 'MISSED'}"
        # The median of two runs is their mean: one slow run of either stack moves
        # it. The fastest run of each says what each can do on this machine.
        m, other = (results[(transport, v, case.name)] for v in ("dicomnet", base))
        if len(m.seconds) > 1 or len(other.seconds) > 1:
            best, best_against = m.rate(case.unit, best=True), other.rate(case.unit, best=True)
            assert best is not None and best_against is not None
            line += f"; fastest run against fastest run {best / best_against:.2f}x"
        return line

    out = [f"Targets for dicomnet ({transport}):"]
    out.append(check(f"{large.label} vs DCMTK +B", large, "dcmtk+B", 1.0))
    out.append(check(f"{images.label} vs DCMTK", images, "dcmtk", 1.0))
    out.append(check(f"{small.label} vs DCMTK", small, "dcmtk", 0.5))
    out.append(check(f"{small.label} vs pynetdicom", small, "pynetdicom", 5.0))
    if rate("pynetdicom-nodelay", small) is not None:
        out.append(check(f"{small.label} vs pynetdicom with TCP_NODELAY (beyond the issue)",
                         small, "pynetdicom-nodelay", 5.0))
    m = results.get((transport, "dicomnet", large.name))
    peak = m.peak_mb if m is not None else None
    if peak is None:
        out.append("- SCP peak RSS receiving large objects: not measured")
    else:
        out.append(f"- SCP peak RSS receiving {large.label.split(' x ')[1]} objects: "
                   f"{peak:.0f} MB (target <= 64 MB) {'met' if peak <= 64 else 'MISSED'}")
    return [*out, ""]
