"""Fuzz targets for sevref's parsers of untrusted input, shared by atheris and hypothesis.

Each module here is one target: ``seeds()`` returns valid inputs to start
from and ``one_input(data)`` feeds one input through the parser and whatever
consumes its result. The rule under test: bad input raises a
:class:`sevref.errors.SevrefError` and nothing else, and never hangs.

``python -m tests.fuzz`` runs each target under atheris (coverage-guided,
libFuzzer) in its own subprocess; ``tests/test_fuzz.py`` runs the same targets
under hypothesis with random and mutated inputs. This package imports no
sevref module itself, so that the atheris harness can instrument sevref on
its first import.
"""

from __future__ import annotations

TARGETS = ("firmware", "snp", "report", "manifest", "verify")
"""The targets, each a module of this package."""
