"""Run one target under atheris: ``python -m tests.fuzz._harness TARGET [libFuzzer options] [CORPUS...]``.

sevref is imported, instrumented for coverage, through the target's module.
Any exception out of the target's ``one_input`` is a crash.
"""

from __future__ import annotations

import importlib
import sys

import atheris  # type: ignore[import-untyped]


def main() -> None:
    """Instrument sevref, load the target and hand the rest of the command line to libFuzzer."""
    target = sys.argv[1]
    with atheris.instrument_imports(include=["sevref"]):
        module = importlib.import_module(f"tests.fuzz.{target}")
    atheris.Setup([sys.argv[0], *sys.argv[2:]], module.one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
