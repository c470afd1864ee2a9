"""Nothing silently lost or wrong: labels unique by construction, suites whole unless sampled
out loud, one clean progress line per stage, and honest determinism (issue 14)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tiny_overrides, write_jsonl
from tbr.cli import main
from tbr.errors import TbrError
from tbr.io import read_jsonl


def _sets(items: list[str]) -> list[str]:
    return sum((["--set", o] for o in items), [])


def _two_model_folders(tiny_model: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Two different models in folders both named `model` (tbr's own layout names every
    trained folder so)."""
    a, b = tmp_path / "base" / "model", tmp_path / "other" / "model"
    shutil.copytree(tiny_model, a)
    shutil.copytree(tiny_model, b)
    from safetensors.torch import load_file, save_file
    w = load_file(b / "model.safetensors")
    for k in w:  # make b a different model, so its answers can differ from a's
        w[k] = w[k] * 0.5
    save_file(w, b / "model.safetensors", metadata={"format": "pt"})
    return a, b


def test_two_folders_of_one_name_are_both_evaluated(tiny_model, tiny_data, tmp_path):
    a, b = _two_model_folders(tiny_model, tmp_path)
    rc = main(["eval", "--no-progress", *_sets(tiny_overrides(tiny_model, tiny_data, tmp_path / "runs")),
               "--model", str(a), "--model", str(b)])
    assert rc == 0
    root = tmp_path / "runs" / "t"
    m = json.loads((root / "metrics.json").read_text())
    assert sorted(m["models"]) == ["base/model", "other/model"]
    for lab in ("base_model", "other_model"):
        rows = read_jsonl(root / "generate" / lab / "responses.jsonl")
        assert len(rows) == 8 and {r["model"] for r in rows} == {lab.replace("_", "/")}
    report = (root / "report.md").read_text()
    assert "| base/model |" in report and "| other/model |" in report


def test_explicit_labels_and_equal_labels_refused_before_work(tiny_model, tiny_data, tmp_path, capsys):
    a, b = _two_model_folders(tiny_model, tmp_path)
    sets = _sets(tiny_overrides(tiny_model, tiny_data, tmp_path / "runs"))
    rc = main(["eval", "--no-progress", *sets, "--model", str(a), "--model", str(b), "--label", "same", "--label", "same"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "two models would share the label 'same'" in err[0]
    assert not (tmp_path / "runs").exists()
    rc = main(["eval", "--no-progress", *sets, "--model", str(a), "--label", "only-one", "--model", str(b)])
    assert rc == 2 and "1 label(s) for 2 --model(s)" in capsys.readouterr().err


def test_label_from_a_tbr_train_manifest(tmp_path):
    from tbr.labels import model_labels
    tdir = tmp_path / "runs" / "demo" / "train" / "smollm2-135m-s0-none-g0.00"
    (tdir / "model").mkdir(parents=True)
    (tdir / "manifest.json").write_text(json.dumps({"stage": "train", "subject": "baseline"}))
    other = tmp_path / "x" / "model"
    other.mkdir(parents=True)
    assert model_labels([(str(tdir / "model"), None), (str(other), None)]) == ["demo/baseline", "model"]
    assert model_labels([(str(tdir / "model"), "mine")]) == ["mine"]
    with pytest.raises(TbrError, match="share the label"):
        model_labels([(str(other), "a"), (str(tdir / "model"), "a")])


def test_no_stage_writes_into_a_folder_another_subject_owns(tmp_path):
    """The stage runner's invariant, independent of how labels were made."""
    from tbr.stages.runner import OwnershipError, ownership, run_stage
    calls = []

    def fn(out: Path) -> dict:
        calls.append(out)
        (out / "responses.jsonl").write_text("x\n")
        return {}
    with ownership():
        run_stage(tmp_path / "generate" / "model", stage="generate", label="g", fp="1", config={}, inputs={},
                  fn=fn, owner="a/model", announce=False)
        with pytest.raises(OwnershipError, match="'a/model' would be written by 'b/model'"):
            run_stage(tmp_path / "generate" / "model", stage="generate", label="g", fp="2", config={}, inputs={},
                      fn=fn, owner="b/model", announce=False)
    assert len(calls) == 1 and (tmp_path / "generate" / "model" / "responses.jsonl").read_text() == "x\n"
    m = json.loads((tmp_path / "generate" / "model" / "manifest.json").read_text())
    assert m["subject"] == "a/model"


def test_a_named_suite_is_evaluated_whole_and_a_limit_is_said(tiny_model, tiny_data, tmp_path):
    ev = [{"id": f"p{i}", "prompt": f"question {i}", "label": "safe" if i % 2 else "unsafe",
           "type": "t1" if i % 3 else "t2"} for i in range(12)]
    suite = write_jsonl(tmp_path / "suite.jsonl", ev)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("data:\n  eval_limit: 4   # the config caps its own suites\n")
    sets = [str(cfg), *_sets(tiny_overrides(tiny_model, tiny_data, tmp_path / "runs"))]
    assert main(["eval", "--no-progress", *sets, "--suite", str(suite)]) == 0
    root = tmp_path / "runs" / "t"
    assert len(read_jsonl(root / "data" / "eval.jsonl")) == 12
    m = json.loads((root / "metrics.json").read_text())
    assert m["sampling"] == [{"suite": str(suite), "kept": 12, "total": 12, "limit": None, "stratified_by": None,
                              "seed": 0}]
    assert f"Suite `{suite}`: all 12 prompts." in (root / "report.md").read_text()
    assert main(["eval", "--no-progress", *sets, "--set", "name=t2", "--suite", str(suite), "--limit", "6"]) == 0
    root = tmp_path / "runs" / "t2"
    m = json.loads((root / "metrics.json").read_text())
    assert m["sampling"][0]["kept"] == 6 and m["sampling"][0]["total"] == 12
    assert f"Suite `{suite}`: sampled 6 of 12 prompts, stratified by label x type" in (root / "report.md").read_text()


def test_epochs_minus_one_is_refused_not_trained_for_zero_steps(tiny_model, tiny_data, tmp_path, capsys):
    rc = main(["run", "--no-progress", *_sets(tiny_overrides(tiny_model, tiny_data, tmp_path / "runs")),
               "--set", "train.max_steps=-1", "--set", "train.epochs=-1"])
    assert rc == 2
    assert "config key 'train.epochs': expected a value > 0, got -1" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_bad_training_file_leaves_no_run_folder(tiny_model, tiny_data, tmp_path, capsys):
    bad = tmp_path / "g.jsonl"
    bad.write_text('{"id": "a", "prompt": "p", "response": "r"}\n{oops\n')
    rc = main(["run", "--no-progress", *_sets(tiny_overrides(tiny_model, tiny_data, tmp_path / "runs")),
               "--set", f"data.general.source={bad}"])
    assert rc == 2 and "g.jsonl:2:" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "t").exists()


def _cli(args: list[str], cwd: Path, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **(env_extra or {})}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run([sys.executable, "-m", "tbr", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_training_prints_one_bar_not_raw_trainer_dicts(tiny_model, tiny_data, tmp_path):
    sets = _sets(tiny_overrides(tiny_model, tiny_data, tmp_path / "runs") + ["build.gamma=[1.0]"])
    p = _cli(["train", *sets], tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    out = p.stdout + p.stderr
    assert "{'loss'" not in out and "'grad_norm'" not in out, out[-2000:]
    assert "FutureWarning" not in out and "DeprecationWarning" not in out, out[-3000:]
    assert "loss=" in out and "tok_s=" in out  # the bar's postfix
    p = _cli(["train", "--verbose", *sets, "--set", "name=v"], tmp_path)
    assert p.returncode == 0 and "'loss'" in p.stdout + p.stderr  # --verbose brings the raw logs back


def test_report_to_reaches_the_trainer():
    from tbr.config import TrainConfig
    from tbr.stages.train import sft_config
    t = TrainConfig(report_to=["tensorboard"])
    args = sft_config(t, Path("/tmp/x"), bf16=False, seed=0, steps_hint=3, cpu=True, progress=False)
    assert args.report_to == ["tensorboard"]
    assert sft_config(TrainConfig(), Path("/tmp/x"), bf16=False, seed=0, steps_hint=3, cpu=True,
                      progress=False).report_to in ([], "none", ["none"])


def test_every_manifest_records_the_machine(tmp_path):
    from tbr.runs import write_manifest
    write_manifest(tmp_path, stage="x", fp="1", config={}, inputs={}, counts={}, seconds=0.0)
    hw = json.loads((tmp_path / "manifest.json").read_text())["hardware"]
    assert hw["machine"] and isinstance(hw["isa"], list) and hw["threads"] >= 1 and hw["device"] in ("cpu", "cuda")
    assert hw["cpu_capability"] in ("DEFAULT", "AVX2", "AVX512", "ZVECTOR", "VSX", "SVE256", "SVE")


_KERNEL_PROBE = r"""
import hashlib, os, sys, torch
if "--pin" in sys.argv:
    from tbr.determinism import pin_kernels
    pin_kernels()
torch.manual_seed(0)
from transformers import LlamaConfig, LlamaForCausalLM
m = LlamaForCausalLM(LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2))
x = torch.randint(0, 128, (4, 32))
opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
for _ in range(3):
    loss = m(input_ids=x, labels=x).loss
    loss.backward(); opt.step(); opt.zero_grad()
with torch.no_grad():
    out = m(input_ids=x).logits
print(torch.backends.cpu.get_cpu_capability(), hashlib.sha256(out.numpy().tobytes()).hexdigest())
"""

# Two CPU families, emulated on one machine by capping the kernels each may use: ATen's
# dispatch level and MKL's code path, the two things that differ between an AVX2 EPYC and an
# AVX-512 Xeon.
FAMILIES = ({"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "SSE4_2"}, {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"})


def _probe(tmp_path: Path, env: dict, pin: bool) -> str:
    script = tmp_path / "probe.py"
    script.write_text(_KERNEL_PROBE)
    full = {**os.environ, **env, "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    p = subprocess.run([sys.executable, str(script), *(["--pin"] if pin else [])], env=full, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout.strip().splitlines()[-1]


def test_deterministic_mode_gives_the_same_bits_on_two_kernel_paths(tmp_path):
    """Without pinning, the two kernel paths give different bits (this is what made the demo's
    figures move between machines); with tbr's pinning, the same bits."""
    import torch
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512") or not torch.backends.mkl.is_available():
        raise AssertionError("this test needs an x86-64 CPU with AVX2 and MKL (every machine tbr supports has them)")
    free = [_probe(tmp_path, e, pin=False) for e in FAMILIES]
    pinned = [_probe(tmp_path, e, pin=True) for e in FAMILIES]
    assert free[0].split()[0] == "DEFAULT" and free[1].split()[0] == "AVX2"
    assert free[0].split()[1] != free[1].split()[1], "the two kernel paths agree: the probe shows nothing"
    assert pinned[0] == pinned[1] and pinned[0].split()[0] == "DEFAULT"


def test_deterministic_flag_sets_fp32_one_thread(tmp_path):
    from tbr.config import load_config
    cfg = load_config(None, ["deterministic=true"])
    assert cfg.model.dtype == "float32" and cfg.threads == 1
    with pytest.raises(TbrError, match="deterministic runs use float32"):
        load_config(None, ["deterministic=true", "model.dtype=bfloat16"])
