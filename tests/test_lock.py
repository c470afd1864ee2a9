"""The run lock: a second `tbr run` on the same run directory refuses (one line, exit 2) while the
first is alive, and goes ahead once the first died (kill -9 drops the flock with the process)."""
from __future__ import annotations

import signal

import pytest

from conftest import tiny_overrides
from test_kill import kill9, run_tbr, start_tbr, wait_for


@pytest.mark.timeout(180)
def test_second_run_refused_while_first_alive_then_proceeds(tmp_path, tiny_model, tiny_data):
    runs = tmp_path / "runs"
    quick = tiny_overrides(tiny_model, tiny_data, runs, "shared")
    slow = quick + ["train.max_steps=100000", "train.save_steps=100000", "threads=1"]  # trains until killed
    root = runs / "shared"
    first = start_tbr(slow, tmp_path, tmp_path / "first.log")
    try:
        wait_for(lambda: (root / "data" / "manifest.json").exists(), first, "the first run to hold the lock")
        second = run_tbr(quick, tmp_path, timeout=60)
        assert first.poll() is None, "the first run should still be alive"
        assert second.returncode == 2, second.stderr
        err = second.stderr.strip().splitlines()
        assert len(err) == 1 and "Traceback" not in second.stderr, second.stderr
        assert err[0].startswith("tbr: error: ") and str(root) in err[0]
        assert f"in use by a live tbr process (pid {first.pid})" in err[0], err[0]
    finally:
        if first.poll() is None:
            kill9(first)
    assert first.returncode == -signal.SIGKILL
    third = run_tbr(quick, tmp_path, timeout=120)
    assert third.returncode == 0, third.stderr[-3000:]
    assert (root / "metrics.json").exists()
