"""Run one fuzz target under atheris (libFuzzer): see README.md.

    PYTHONPATH=src:. python -m tests.fuzz_harness.run TARGET CORPUS_DIR [libFuzzer flags]

The corpus folder is seeded with the target's valid inputs when empty; a crash
is written by libFuzzer as ``crash-<sha1>`` (``-artifact_prefix``).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]


def main() -> None:
    # pytest runs with filterwarnings=error: a warning is a failure here too.
    warnings.simplefilter("error")
    name, corpus = sys.argv[1], Path(sys.argv[2])
    with atheris.instrument_imports(include=["dicomnet"]):
        from tests.fuzz_harness.targets import TARGETS
    target, seeds = TARGETS[name]
    corpus.mkdir(parents=True, exist_ok=True)
    if not any(corpus.iterdir()):
        for index, seed in enumerate(seeds()):
            (corpus / f"seed-{index:03d}").write_bytes(seed)
    atheris.Setup([sys.argv[0], str(corpus), *sys.argv[3:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
