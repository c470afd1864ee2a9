"""Two CPU processes over gloo through `accelerate launch ... -m tbr.cli train`: both ranks
train (each sees half the rows, the step count halves), rank 0 alone saves."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tiny_overrides

ROOT = Path(__file__).resolve().parents[1]
EXTRA = ["build.gamma=[1.0]", "train.max_steps=-1", "train.epochs=1", "train.batch_size=3"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_dir(runs: Path, name: str) -> Path:
    (d,) = [p for p in (runs / name / "train").iterdir() if p.is_dir()]
    return d


@pytest.mark.slow
def test_two_cpu_processes(tiny_model, tiny_data, tmp_path):
    from tbr.cli import main
    runs = tmp_path / "runs"
    sets = [a for o in [*tiny_overrides(tiny_model, tiny_data, runs, "one"), *EXTRA] for a in ("--set", o)]
    assert main(["train", *sets, "--no-progress"]) == 0
    one = json.loads((_train_dir(runs, "one") / "train_summary.json").read_text())

    sets = [a for o in [*tiny_overrides(tiny_model, tiny_data, runs, "two"), *EXTRA] for a in ("--set", o)]
    accelerate = Path(sys.executable).with_name("accelerate")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    r = subprocess.run([str(accelerate), "launch", "--config_file", str(ROOT / "configs/accelerate/cpu_ddp.yaml"),
                        "--main_process_port", str(_free_port()), "-m", "tbr.cli", "train", *sets, "--no-progress"],
                       env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    d = _train_dir(runs, "two")
    two = json.loads((d / "train_summary.json").read_text())

    assert one["world_size"] == 1 and two["world_size"] == 2
    assert one["steps"] == 6 and two["steps"] == 3  # 18 rows, batch 3 per rank
    ranks = {p["rank"]: p for p in two["per_rank"]}
    assert set(ranks) == {0, 1}
    assert all(p["batches"] == 3 and p["rows"] == 9 and p["tokens"] > 0 for p in ranks.values())
    assert sum(p["tokens"] for p in ranks.values()) == one["tokens_seen"]  # the data split, none twice
    # saved once, by rank 0
    assert [x["step"] for x in map(json.loads, (d / "train_log.jsonl").read_text().splitlines())] == [1, 2, 3]
    assert (d / "model" / "adapter_model.safetensors").exists() and (d / "manifest.json").exists()
    assert not (d / ".model.tmp").exists() and not (d / "checkpoints").exists()
    assert r.stdout.count(str(runs / "two" / "train")) == 1  # one rank reports
