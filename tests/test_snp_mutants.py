"""Every check of the report signature is one a test would miss: delete it, and some test must fail.

As tests/test_mutants.py does for the publication's checks, with its machinery:
each ``raise EvidenceError(...)`` and ``raise CertificateFormatError(...)`` of
sevref/snp/verify.py becomes ``pass`` in turn, and the SEV-SNP tests must
notice. Each mutant runs in a child of the fork server, as there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mutation import put_in_and_out
from tests.test_mutants import mutants, survivors

MODULE = "sevref.snp.verify"
ERRORS = frozenset({"EvidenceError", "CertificateFormatError"})
TESTS = ["tests/test_snp_verify.py", "tests/test_snp_cli.py", "tests/test_snp_validate.py"]


def test_the_mutants_can_be_made() -> None:
    found = mutants(MODULE, ERRORS)
    assert len(found) >= 20
    for mutant in found:
        compile(mutant.source, mutant.name, "exec")
        assert len(put_in_and_out(MODULE, mutant.source)) == 1, mutant.name


@pytest.mark.slow
def test_no_check_of_the_report_signature_can_be_deleted_unnoticed(tmp_path: Path) -> None:
    alive = [m.line for m in survivors(mutants(MODULE, ERRORS), tmp_path, TESTS, ())]
    assert alive == [], f"lines of {MODULE} whose check no test notices when deleted: {alive}"
