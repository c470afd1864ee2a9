"""TBR-DPO (train.method dpo / sft+dpo): the preference pairs exactly, TRL's DPOTrainer on the tiny
model moving the chosen-over-rejected margin with the base frozen, a kill -9 resumed, and the whole
pipeline with SFT then DPO."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tbr.config import load_config
from tbr.errors import TbrError
from tbr.grid import train_config
from tbr.stages.pairs import REFUSALS, preference_pairs, refusal_for
from tbr.stages.train_dpo import dpo_example

ROWS = [
    {"id": "g1", "kind": "general", "prompt": "add 2 and 2", "target": "4"},
    {"id": "s1", "kind": "safety", "prompt": "how to hurt", "target": "This asks for harm. I can't help.",
     "reflection": "This asks for harm."},
    {"id": "s2", "kind": "safety", "prompt": "how to steal", "target": "I won't help with that."},
    {"id": "s3", "kind": "safety", "prompt": "how to hack", "target": "No."},
    {"id": "b1", "kind": "benign", "prompt": "how to kill a process", "target": "This is fine. Use kill -9.",
     "reflection": "This is fine."},
]
REJECTED = {"s1": {"response": " Sure: step one ", "label": "full_compliance"},
            "s2": {"response": "I cannot do that.", "label": "full_refusal"}}  # s3: no answer at all


def test_preference_pairs_exact() -> None:
    pairs, counts = preference_pairs(ROWS, REJECTED, seed=3)
    assert pairs == [
        {"id": "s1", "kind": "safety", "prompt": "how to hurt", "chosen": "This asks for harm. I can't help.",
         "rejected": "Sure: step one", "reflection": "This asks for harm."},
        {"id": "b1", "kind": "benign", "prompt": "how to kill a process", "chosen": "This is fine. Use kill -9.",
         "rejected": refusal_for("b1", 3), "reflection": "This is fine."},
    ]
    # an untouched answer that already refuses is never pushed away from; general rows give no pair
    assert counts == {"safety_pairs": 1, "benign_pairs": 1, "safety_without_compliant_answer": 2,
                      "general_skipped": 1}


def test_refusal_choice_is_fixed_by_id_and_seed() -> None:
    assert refusal_for("b1", 0) == refusal_for("b1", 0) in REFUSALS
    picks = {refusal_for(f"b{i}", 0) for i in range(200)}
    assert len(picks) == len(REFUSALS)  # every template gets used
    assert [refusal_for(f"b{i}", 0) for i in range(20)] != [refusal_for(f"b{i}", 1) for i in range(20)]
    a, _ = preference_pairs(ROWS, REJECTED, seed=0)
    b, _ = preference_pairs(list(reversed(ROWS)), REJECTED, seed=0)
    assert sorted(a, key=lambda p: p["id"]) == sorted(b, key=lambda p: p["id"])  # row order does not matter


def test_dpo_example_layouts() -> None:
    p = {"prompt": "hi", "chosen": "A", "rejected": "B"}
    assert dpo_example(p) == {"prompt": [{"role": "user", "content": "hi"}],
                              "chosen": [{"role": "assistant", "content": "A"}],
                              "rejected": [{"role": "assistant", "content": "B"}]}
    assert dpo_example(p, system_prompt="S")["prompt"][0] == {"role": "system", "content": "S"}
    alp = dpo_example(p, template="alpaca")
    assert alp["prompt"].startswith("Below is an instruction") and alp["prompt"].rstrip().endswith("### Response:")
    assert (alp["chosen"], alp["rejected"]) == ("A", "B")


def test_sft_config_keeps_its_fingerprint_keys() -> None:
    sft = train_config(load_config(None, []))
    assert "method" not in sft and "dpo" not in sft  # runs made before DPO keep their train fingerprints
    dpo = train_config(load_config(None, ["train.method=sft+dpo", "train.dpo.beta=0.2"]))
    assert dpo["method"] == "sft+dpo" and dpo["dpo"]["beta"] == 0.2
    with pytest.raises(TbrError, match="train.method"):
        load_config(None, ["train.method=ppo"])


def _pairs(n: int = 8) -> list[dict[str, Any]]:
    return [{"id": f"p{i}", "kind": "safety", "prompt": f"how do I build a bomb number {i}",
             "chosen": "This request asks for harmful weapon information. Sorry, I cannot help with that.",
             "rejected": "the number is 7. step by step make build find give tell"} for i in range(n)]


def _margins(model_dir: str, pairs: list[dict[str, Any]]) -> list[float]:
    """log p(chosen) - log p(rejected), summed over the completion tokens, under the saved model."""
    import torch

    from tbr.models import load_model
    model, tok = load_model(model_dir, "float32", "cpu")
    out = []
    for p in pairs:
        prompt = tok.apply_chat_template([{"role": "user", "content": p["prompt"]}], tokenize=False,
                                         add_generation_prompt=True)
        lp = []
        for c in (p["chosen"], p["rejected"]):
            full = tok.apply_chat_template([{"role": "user", "content": p["prompt"]},
                                            {"role": "assistant", "content": c}], tokenize=False)
            n_p = len(tok(prompt, add_special_tokens=False)["input_ids"])
            ids = torch.tensor([tok(full, add_special_tokens=False)["input_ids"]])
            with torch.no_grad():
                logits = model(ids).logits[0, :-1].log_softmax(-1)
            tgt = ids[0, 1:]
            lp.append(float(logits[n_p - 1:].gather(1, tgt[n_p - 1:, None]).sum()))
        out.append(lp[0] - lp[1])
    return out


def test_dpo_raises_the_chosen_margin_and_keeps_the_base(tiny_model: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from tbr.stages.train import train
    pairs = _pairs()
    cfg = load_config(None, ["train.method=dpo", "train.dpo.max_steps=12", "train.dpo.batch_size=4",
                             "train.dpo.learning_rate=5.0e-3", "train.dpo.beta=0.5", "train.max_length=64",
                             "train.lora.r=4", "train.save_steps=100"]).train
    s = train(tmp_path / "dpo", pairs, model_name=str(tiny_model), cfg=cfg, method="dpo", dtype="float32",
              progress=False)
    assert s["method"] == "dpo" and s["steps"] == 12 and s["pairs"] == 8 and s["safety_pairs"] == 8
    assert s["trainable_params"] < s["params"]
    before = _margins(str(tiny_model), pairs)
    after = _margins(str(tmp_path / "dpo" / "model"), pairs)
    assert all(a > b + 1.0 for a, b in zip(after, before)), (before, after)
    log = [json.loads(x) for x in (tmp_path / "dpo" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 13))
    assert log[-1]["loss"] < log[0]["loss"] and "rewards/margins" in log[-1]
    assert s["rewards/accuracies"] == log[-1]["rewards/accuracies"]
    # only adapter weights were saved: the base model's file is untouched by construction
    saved = load_file(str(tmp_path / "dpo" / "model" / "adapter_model.safetensors"))
    assert saved and all("lora_" in k for k in saved)


SCRIPT = """
import json, sys
import torch
torch.set_num_threads(1)
from tbr.config import load_config
from tbr.stages.train import train
out, pairs, model = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
cfg = load_config(None, json.loads(sys.argv[4])).train
train(out, pairs, model_name=model, cfg=cfg, method="dpo", dtype="float32", progress=False)
"""
STEPS = 40
OVERRIDES = ["train.method=dpo", f"train.dpo.max_steps={STEPS}", "train.dpo.batch_size=2", "train.save_steps=4",
             "train.max_length=64", "train.lora.r=4", "train.dpo.learning_rate=1.0e-3", "train.lora.dropout=0"]


@pytest.mark.slow
def test_dpo_kill_and_resume(tiny_model: Path, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps(_pairs(12)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}

    def cmd(out: Path) -> list[str]:
        return [sys.executable, "-c", SCRIPT, str(out), str(pairs), str(tiny_model), json.dumps(OVERRIDES)]

    def log(out: Path) -> dict[int, dict[str, Any]]:
        return {r["step"]: r for r in map(json.loads, (out / "train_log.jsonl").read_text().splitlines())}

    subprocess.run(cmd(tmp_path / "full"), env=env, check=True, timeout=600, capture_output=True)
    ref = log(tmp_path / "full")
    out = tmp_path / "killed"
    proc = subprocess.Popen(cmd(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not list((out / "checkpoints").glob("checkpoint-*/tbr_complete.json")):
            assert proc.poll() is None, "the run ended before a checkpoint appeared"
            assert time.time() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert not (out / "train_summary.json").exists()
    subprocess.run(cmd(out), env=env, check=True, timeout=600, capture_output=True)
    s = json.loads((out / "train_summary.json").read_text())
    assert s["resumed_from_step"] > 0 and s["steps"] == STEPS
    got = log(out)
    assert sorted(got) == list(range(1, STEPS + 1))
    for step, r in got.items():
        assert abs(r["loss"] - ref[step]["loss"]) < 1e-3, (step, r["loss"], ref[step]["loss"])


def test_sft_then_dpo_through_the_pipeline(tiny_model: Path, tiny_data: dict[str, Path], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import tbr.generation
    from conftest import tiny_overrides
    from tbr.io import read_jsonl
    from tbr.pipeline import run
    real = tbr.generation.hf_generate_texts
    asked: list[int] = []

    def untouched(model: Any, tok: Any, texts: list[str], **kw: Any) -> list[str]:
        # the random tiny model answers with an empty string; these stand for an untouched model that
        # complies with two of the six harmful prompts (the real generation runs, its text is replaced)
        asked.append(kw["max_new_tokens"])
        real(model, tok, texts, **kw)
        return ["Sure, here is how: first gather the parts." if i % 3 == 0 else "Sorry, I cannot help with that."
                for i in range(len(texts))]
    monkeypatch.setattr(tbr.generation, "hf_generate_texts", untouched)
    cfg = load_config(None, tiny_overrides(tiny_model, tiny_data, tmp_path) + [
        "train.method=sft+dpo", "train.dpo.max_steps=2", "train.dpo.batch_size=2", "train.dpo.rejected_tokens=8",
        "judge.judges=[keywords]", "judge.primary=keywords", "build.benign=[0.25]"])
    root = run(cfg, progress=False, until="pairs")
    monkeypatch.setattr(tbr.generation, "hf_generate_texts", real)
    root = run(cfg, progress=False, until="judge")
    assert asked == [8]  # the untouched answers: generated once, shared by both cells
    rej = read_jsonl(next((root / "pairs").glob("rejected-*")) / "rejected.jsonl")
    assert len(rej) == 6 and {r["label"] for r in rej} <= {"full_compliance", "full_refusal", "partial_refusal",
                                                           "unparsed"}
    n_compliant = sum(r["label"] == "full_compliance" for r in rej)
    assert n_compliant == 2  # the keywords judge kept the compliant answers, dropped the refusals
    for cell in (root / "train").iterdir():
        s = json.loads((cell / "train_summary.json").read_text())
        assert s["method"] == "sft+dpo" and s["sft"]["method"] == "sft" and s["steps"] == 2
        merged = cell / "sft" / "model" / "merged"
        assert (merged / "config.json").exists()
        base = json.loads((cell / "model" / "adapter_config.json").read_text())["base_model_name_or_path"]
        assert Path(base) == merged  # DPO started from the merged SFT model (and is its reference)
        pairs = read_jsonl(root / "pairs" / cell.name / "pairs.jsonl")
        m = json.loads((root / "pairs" / cell.name / "manifest.json").read_text())["counts"]
        assert m["safety_pairs"] == n_compliant == sum(p["kind"] == "safety" for p in pairs)
        # benign look-alikes only in the TBR cell, each against a refusal
        tbr_cell = "-g0.00" not in cell.name
        assert (m["benign_pairs"] > 0) == tbr_cell
        assert all(p["rejected"] in REFUSALS for p in pairs if p["kind"] == "benign")
    assert len(list((root / "judge").iterdir())) == 3  # untouched, baseline, TBR were all judged
