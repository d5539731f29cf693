"""Documentation generated from the code stays in step with it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import moat_harness as mh

ROOT = Path(__file__).resolve().parents[2]


def test_operations_doc_matches_the_configuration_tables(tmp_path):
    out = tmp_path / "operations.md"
    subprocess.run([str(ROOT / "scripts" / "gen-operations"),
                    str(mh.build_dir()), str(out)], check=True, timeout=60)
    committed = (ROOT / "docs" / "operations.md").read_text("utf-8")
    assert out.read_text("utf-8") == committed, (
        "docs/operations.md is out of date: run scripts/gen-operations "
        "build/asan")
    # Every key of both programs is in it, with its flag and variable.
    for exe, arg in (("moatd", "config-reference"),
                     ("moat-proxy", "--config-reference")):
        table = subprocess.run([str(mh.binary(exe)), arg], check=True,
                               capture_output=True, text=True,
                               timeout=30).stdout
        rows = [l for l in table.splitlines() if l.startswith("| `")]
        assert len(rows) > 5
        for row in rows:
            assert row in committed
