"""The systemd units in deploy/systemd: valid for systemd, hardened, and
starting the programs with flags they accept. (The tests run without
systemd as PID 1, so the units are checked offline with systemd-analyze.)"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import moat_harness as mh

ROOT = Path(__file__).resolve().parents[2]
UNITS = {"moatd.service": "moatd", "moat-proxy.service": "moat-proxy"}

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="systemd-analyze not installed")


def local_copy(tmp_path: Path, unit: str) -> Path:
    """The unit with ExecStart pointing at the built binary (verify checks
    that the program exists and is executable)."""
    text = (ROOT / "deploy" / "systemd" / unit).read_text("utf-8")
    text = text.replace("/usr/local/bin/", str(mh.build_dir()) + "/")
    out = tmp_path / unit
    out.write_text(text)
    return out


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_unit_verifies_and_is_hardened(tmp_path, unit):
    path = local_copy(tmp_path, unit)
    cp = subprocess.run(["systemd-analyze", "verify", str(path)],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert cp.stderr.strip() == "", cp.stderr
    # Exposure 2.5 or better on systemd's 0 (locked down) to 10 scale.
    cp = subprocess.run(["systemd-analyze", "security", "--offline=true",
                         "--threshold=25", str(path)],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stdout[-2000:]
    text = path.read_text()
    for key in ("NoNewPrivileges=yes", "CapabilityBoundingSet=\n",
                "ProtectSystem=strict", "UMask=0077"):
        assert key in text


def test_units_start_the_programs_with_flags_they_accept(tmp_path,
                                                         moatd_data, procs):
    # moatd: the unit's flags with a real data directory.
    unit = (ROOT / "deploy/systemd/moatd.service").read_text()
    exec_line = next(l for l in unit.splitlines()
                     if l.startswith("ExecStart="))
    args = exec_line.split("=", 1)[1].split()[1:]
    assert args == ["--data-dir", "/var/lib/moat"]
    m = mh.Moatd(procs, moatd_data).start()
    assert m.curl("/healthz").status == 200
    # moat-proxy: --config FILE naming the policy, as the unit documents.
    unit = (ROOT / "deploy/systemd/moat-proxy.service").read_text()
    assert "--config /etc/moat/moat-proxy.yaml" in unit
    policy = tmp_path / "policy.yaml"
    policy.write_text("name: none\nallow: []\n")
    cfg = tmp_path / "moat-proxy.yaml"
    port = mh.free_port()
    cfg.write_text(f"policy: {policy}\nlisten: 127.0.0.1:{port}\n")
    p = procs.start([str(mh.binary("moat-proxy")), "--config", str(cfg)],
                    name="moat-proxy")
    mh.wait_for_port(port, proc=p)
