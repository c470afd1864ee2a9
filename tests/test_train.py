"""tbr.stages.train on the tiny model: the masking checked on the batches the trainer feeds the model,
padding-free equal to padded, the outputs, and checkpoints that cannot be read."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tbr.config import load_config
from tbr.errors import TbrError
from tbr.stages import build as B
from tbr.stages.build import IGNORE


def _read(p: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def make_rows(tiny_model: Path, tiny_data: dict[str, Path]) -> list[dict[str, Any]]:
    """The tiny data mixed with γ=1 (every safety row carries its reflection) and rendered."""
    from tbr.models import load_tokenizer
    tok = load_tokenizer(str(tiny_model))
    saf = _read(tiny_data["safety"])
    rows, _ = B.mix(_read(tiny_data["general"]), saf, {r["id"]: r["reflection"] for r in saf}, 1.0, 0)
    for r in rows:
        r["prompt_text"], r["completion_text"] = B.render(tok, r["prompt"], r["target"])
    return rows


def train_cfg(*extra: str) -> Any:
    return load_config(None, ["train.max_steps=3", "train.batch_size=4", "train.save_steps=100",
                              "train.max_length=64", "train.lora.r=4", *extra]).train


@pytest.fixture()
def capture(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every batch the SFTTrainer hands its loss: TRL's compute_loss, or tbr's completion_loss
    (train.completion_head, the default), whichever the trainer runs."""
    import torch
    from trl import SFTTrainer

    from tbr.stages import sft_loss
    seen: list[dict[str, Any]] = []
    orig, orig_completion = SFTTrainer.compute_loss, sft_loss.completion_loss

    def keep(inputs: dict[str, Any]) -> None:
        seen.append({n: v.detach().clone() for n, v in inputs.items() if torch.is_tensor(v)})

    def spy(self: Any, model: Any, inputs: dict[str, Any], *a: Any, **k: Any) -> Any:
        keep(inputs)
        return orig(self, model, inputs, *a, **k)

    def spy_completion(model: Any, inputs: dict[str, Any], *a: Any, **k: Any) -> Any:
        keep(inputs)
        return orig_completion(model, inputs, *a, **k)
    monkeypatch.setattr(SFTTrainer, "compute_loss", spy)
    monkeypatch.setattr(sft_loss, "completion_loss", spy_completion)
    return seen


def expected_by_ids(tiny_model: Path, rows: list[dict[str, Any]], max_length: int) -> dict[tuple, tuple]:
    """input_ids -> labels, derived independently: -100 on exactly the prompt's tokens."""
    from tbr.models import load_tokenizer
    tok = load_tokenizer(str(tiny_model))
    out = {}
    for r in rows:
        p = tok(r["prompt_text"], add_special_tokens=False)["input_ids"]
        c = tok(r["completion_text"], add_special_tokens=False)["input_ids"]
        ids = (p + c)[:max_length]
        labels = ([IGNORE] * len(p) + c)[:max_length]
        out[tuple(ids)] = tuple(labels)
    return out


def test_loss_only_on_response_tokens_through_the_trainer(tiny_model, tiny_data, tmp_path, capture):
    from tbr.models import load_tokenizer
    from tbr.stages.train import train
    rows = make_rows(tiny_model, tiny_data)
    want = expected_by_ids(tiny_model, rows, 64)
    s = train(tmp_path / "t", rows, model_name=str(tiny_model), cfg=train_cfg("train.merge=true"),
              dtype="float32", progress=False)
    assert s["steps"] == 3 and len(capture) == 3
    tok = load_tokenizer(str(tiny_model))
    seen_rows = 0
    reflected = 0
    for batch in capture:
        ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
        assert ids.shape == labels.shape == mask.shape
        for b in range(ids.shape[0]):
            n = int(mask[b].sum())
            assert mask[b, :n].eq(1).all() and mask[b, n:].eq(0).all()  # right padding
            assert labels[b, n:].eq(IGNORE).all()  # padding is out of the loss
            key = tuple(ids[b, :n].tolist())
            assert key in want, "the trainer fed a row we did not tokenize"
            got = labels[b, :n].tolist()
            assert got == list(want[key])  # -100 exactly on the prompt, == input_ids on the completion
            first = next(i for i, x in enumerate(got) if x != IGNORE)
            assert all(x == IGNORE for x in got[:first]) and got[first:] == list(key[first:])
            text = tok.decode(got[first:])
            if "harmful weapon" in text:  # the reflection is part of the supervised response
                reflected += 1
                assert "Sorry" in text or len(key) == 64
            seen_rows += 1
    assert seen_rows == 12 and reflected > 0


def test_outputs(tiny_model, tiny_data, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tbr.stages.train import train
    out = tmp_path / "t"
    train(out, make_rows(tiny_model, tiny_data), model_name=str(tiny_model), cfg=train_cfg("train.merge=true"),
          dtype="float32", progress=False)
    m = out / "model"
    assert (m / "adapter_config.json").exists() and (m / "adapter_model.safetensors").exists()
    tok = AutoTokenizer.from_pretrained(m)
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    merged = AutoModelForCausalLM.from_pretrained(m / "merged")
    assert merged.config.vocab_size > 0 and AutoTokenizer.from_pretrained(m / "merged").chat_template
    log = _read(out / "train_log.jsonl")
    assert [r["step"] for r in log] == [1, 2, 3] and all("loss" in r for r in log)
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 3 and summary["world_size"] == 1 and summary["tokens_seen"] > 0
    assert not (out / "checkpoints").exists() and not (out / ".model.tmp").exists()


def test_padding_free_batches_and_loss_equal_padded(tiny_model, tiny_data, tmp_path, capture):
    from tbr.stages.train import train
    rows = make_rows(tiny_model, tiny_data)
    want = expected_by_ids(tiny_model, rows, 64)
    common = ("train.lora.dropout=0.0", "train.max_steps=4")
    train(tmp_path / "pad", rows, model_name=str(tiny_model), cfg=train_cfg(*common), dtype="float32",
          progress=False)
    n_padded = len(capture)
    train(tmp_path / "free", rows, model_name=str(tiny_model), cfg=train_cfg(*common, "train.padding_free=true"),
          dtype="float32", progress=False)
    free = capture[n_padded:]
    assert len(free) == 4
    for batch in free:
        assert "attention_mask" not in batch and batch["input_ids"].shape[0] == 1
        ids, labels, pos = batch["input_ids"][0], batch["labels"][0], batch["position_ids"][0]
        starts = (pos == 0).nonzero().flatten().tolist() + [len(pos)]
        assert len(starts) - 1 == 4  # one segment per row of the batch, positions restart in each
        for a, b in zip(starts, starts[1:]):
            key = tuple(ids[a:b].tolist())
            assert key in want and labels[a:b].tolist() == list(want[key])
            assert pos[a:b].tolist() == list(range(b - a))
    pad = _read(tmp_path / "pad" / "train_log.jsonl")
    pf = _read(tmp_path / "free" / "train_log.jsonl")
    assert [r["step"] for r in pad] == [r["step"] for r in pf] == [1, 2, 3, 4]
    for a, b in zip(pad, pf):
        assert abs(a["loss"] - b["loss"]) < 1e-5, (a, b)
        assert abs(a["grad_norm"] - b["grad_norm"]) < 1e-4, (a, b)


def _fake_checkpoint(out: Path, step: int, complete: bool = True) -> Path:
    d = out / "checkpoints" / f"checkpoint-{step}"
    d.mkdir(parents=True)
    (d / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (d / "adapter_model.safetensors").write_bytes(b"\x00garbage" * 100)
    (d / "optimizer.pt").write_bytes(b"not a zip file")
    if complete:
        (d / "tbr_complete.json").write_text(json.dumps({"step": step}))
    return d


def test_corrupt_checkpoint_is_a_clear_error(tiny_model, tiny_data, tmp_path):
    from tbr.stages.train import train
    out = tmp_path / "t"
    d = _fake_checkpoint(out, 2)
    with pytest.raises(TbrError, match=r"checkpoint .*checkpoint-2 is corrupt \(adapter_model.safetensors"):
        train(out, make_rows(tiny_model, tiny_data), model_name=str(tiny_model), cfg=train_cfg(),
              dtype="float32", progress=False)
    (d / "trainer_state.json").write_text("{not json")
    with pytest.raises(TbrError, match=r"corrupt \(trainer_state.json"):
        train(out, make_rows(tiny_model, tiny_data), model_name=str(tiny_model), cfg=train_cfg(),
              dtype="float32", progress=False)


def test_torn_checkpoint_is_ignored(tiny_model, tiny_data, tmp_path):
    """A folder without the completion marker is what a kill mid-save leaves: start afresh."""
    from tbr.stages.train import latest_checkpoint, train
    out = tmp_path / "t"
    _fake_checkpoint(out, 2, complete=False)
    assert latest_checkpoint(out / "checkpoints") is None
    s = train(out, make_rows(tiny_model, tiny_data), model_name=str(tiny_model), cfg=train_cfg(),
              dtype="float32", progress=False)
    assert s["steps"] == 3 and s["resumed_from_step"] == 0


def test_padding_free_config_key_documented():
    from tbr.config import describe
    keys = {k: h for k, _, h in describe()}
    assert "train.padding_free" in keys and keys["train.padding_free"]


@pytest.mark.parametrize("name,kind", [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("deepspeed_zero3", "DEEPSPEED"),
                                       ("cpu_ddp", "MULTI_GPU")])
def test_accelerate_configs_load(name, kind):
    from accelerate.commands.config.config_args import load_config_from_file
    c = load_config_from_file(str(Path(__file__).resolve().parents[1] / "configs" / "accelerate" / f"{name}.yaml"))
    assert c.distributed_type.name == kind and c.num_processes >= 2
    if name == "cpu_ddp":
        assert c.mixed_precision == "no"  # ranks find no GPU and join over gloo (tbr.stages.train)
