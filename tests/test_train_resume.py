"""Kill -9 a training run after a checkpoint exists; the same call resumes and ends where an
uninterrupted run ends, with one continuous log."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_train import make_rows  # tests/ is on sys.path (pytest rootdir-relative imports)

SCRIPT = """
import json, sys
import torch
torch.set_num_threads(1)
from tbr.config import load_config
from tbr.stages.train import train
out, rows, model = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
cfg = load_config(None, json.loads(sys.argv[4])).train
train(out, rows, model_name=model, cfg=cfg, dtype="float32", progress=False)
"""
STEPS = 60
OVERRIDES = [f"train.max_steps={STEPS}", "train.batch_size=2", "train.save_steps=4", "train.max_length=64",
             "train.lora.r=4", "train.learning_rate=1.0e-3"]


def _cmd(tmp: Path, out: Path, rows: Path, model: Path) -> list[str]:
    return [sys.executable, "-c", SCRIPT, str(out), str(rows), str(model), json.dumps(OVERRIDES)]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}


def _log(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_kill_and_resume(tiny_model, tiny_data, tmp_path):
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps(make_rows(tiny_model, tiny_data)))

    full = tmp_path / "full"
    subprocess.run(_cmd(tmp_path, full, rows, tiny_model), env=_env(), check=True, timeout=600, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ref = {r["step"]: r for r in _log(full)}
    assert sorted(ref) == list(range(1, STEPS + 1))

    out = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(tmp_path, out, rows, tiny_model), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not list((out / "checkpoints").glob("checkpoint-*/tbr_complete.json")):
            assert proc.poll() is None, "the run ended before a checkpoint appeared"
            assert time.time() < deadline, "no checkpoint within 300 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "train_summary.json").exists()

    subprocess.run(_cmd(tmp_path, out, rows, tiny_model), env=_env(), check=True, timeout=600, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    summary = json.loads((out / "train_summary.json").read_text())
    resumed = summary["resumed_from_step"]
    assert resumed > 0 and resumed % 4 == 0
    assert summary["steps"] == STEPS
    log = _log(out)
    assert [r["step"] for r in log] == list(range(1, STEPS + 1))  # no gap, no duplicate
    for r in log:
        if r["step"] <= resumed:  # written before the kill
            assert abs(r["loss"] - ref[r["step"]]["loss"]) < 1e-5, r
    # after the resume: the same batches and RNG state, so the same curve (looser: state reloaded)
    for r in log:
        if r["step"] > resumed:
            assert abs(r["loss"] - ref[r["step"]]["loss"]) < 1e-3, r
    assert (out / "model" / "adapter_model.safetensors").exists() and (out / "loss.png").exists()
    assert not (out / "checkpoints").exists()
