"""benchmarks/summary.py (`make bench`): the summary line each benchmark prints, the table built
from them, and a run of the generation benchmark through it on the tiny model."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import summary as S  # noqa: E402  (benchmarks/ is not a package)

pytestmark = pytest.mark.timeout(200)

ROW = {"figure": "generation tokens/s", "value": 650.25, "unit": "tokens/s", "baseline": "one at a time",
       "baseline_value": 31.0, "ratio": 20.976, "peak_share": 0.2104, "cpu": "AMD EPYC", "threads": 2,
       "flops": "2N"}


def test_parse_summary_takes_the_last_summary_line():
    out = "model: x\nsummary: {\"figure\": \"old\"}\n" + "summary: " + json.dumps(ROW) + "\nratio: 20.98\n"
    assert S.parse_summary(out) == ROW
    assert S.parse_summary("ratio: 1.00\n") is None


def test_table_rows_exact():
    judge = dict(ROW, figure="judging rows/s", value=77.8, unit="rows/s", baseline="naive", baseline_value=43.6,
                 ratio=1.784, peak_share=None)
    lines = S.table([("generate", ROW), ("judge", judge), ("train", None)]).splitlines()
    assert lines[0].startswith("| benchmark | figure | value | baseline |")
    assert lines[2] == ("| generate | generation tokens/s | 650.2 tokens/s | one at a time | 31.0 tokens/s | 20.98 | "
                        "21.0% (2N) | AMD EPYC | 2 |")
    assert lines[3] == ("| judge | judging rows/s | 77.8 rows/s | naive | 43.6 rows/s | 1.78 | n/a | AMD EPYC | 2 |")
    assert lines[4] == "| train | failed: no summary line | | | | | | | |"


def test_summary_runs_the_generation_benchmark_on_the_tiny_model():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "summary.py"), "--only", "generate", "--",
                        "--tiny", "--n", "6", "--max-new-tokens", "6"], capture_output=True, text=True, env=env,
                       timeout=190, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-2000:]
    out = p.stdout
    assert "ratio: " in out  # the script's own output is shown
    s = S.parse_summary(out)
    assert s is not None and s["figure"] == "generation tokens/s" and s["threads"] == 1
    assert s["value"] > 0 and s["baseline_value"] > 0 and 0 < s["peak_share"] < 1
    assert abs(s["ratio"] - s["value"] / s["baseline_value"]) < 0.01
    row = [x for x in out.splitlines() if x.startswith("| generate |")]
    assert len(row) == 1 and f"| {s['ratio']:.2f} |" in row[0]


def test_scale_on_paper_arithmetic_exact():
    import scale_on_paper as P
    # 4N x 1e9 params x 100 rows x 2 epochs x 10 tokens = 8e12 FLOP; at 2 GPUs x 1e12 x 0.5 -> 8 s
    assert P.train_seconds(1e9, 100, 2, 10.0, True, 2, 1e12, 0.5) == pytest.approx(8.0)
    assert P.train_seconds(1e9, 100, 2, 10.0, False, 2, 1e12, 0.5) == pytest.approx(12.0)  # 6N
    assert P.state_bytes_per_gpu(70e9, False, 8) == pytest.approx(140e9)  # 16 bytes, sharded 8 ways
    assert P.state_bytes_per_gpu(8e9, True, 1) == pytest.approx(16e9)  # bf16 weights only
