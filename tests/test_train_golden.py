"""Training checked against values derived independently, not against another run of itself
(torchtune's and TRL's habit): the first logged loss equals the base model's cross-entropy on
the batch the trainer fed it (LoRA's B starts at zero, so step 1 *is* the base model); LoRA
parameters move while every base weight stays bit-identical; and the merged model equals the
base weights plus B @ A * alpha / r."""
from __future__ import annotations

import json

import pytest
import torch

from test_train import capture, expected_by_ids, make_rows, train_cfg  # noqa: F401  (capture is a fixture)


def _base(tiny_model):
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.float32).eval()


def test_step1_loss_is_the_base_models_cross_entropy(tiny_model, tiny_data, tmp_path, capture):  # noqa: F811
    from tbr.stages.train import train
    rows = make_rows(tiny_model, tiny_data)
    train(tmp_path / "t", rows, model_name=str(tiny_model), cfg=train_cfg("train.lora.dropout=0.0"),
          dtype="float32", progress=False)
    batch = capture[0]
    base = _base(tiny_model)
    with torch.no_grad():
        logits = base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    # the labels derived independently of the trainer: -100 on the prompt's tokens and on
    # padding, the completion's own ids elsewhere
    want_labels = expected_by_ids(tiny_model, rows, 64)
    labels = torch.full_like(batch["input_ids"], -100)
    for b in range(labels.shape[0]):
        n = int(batch["attention_mask"][b].sum())
        labels[b, :n] = torch.tensor(want_labels[tuple(batch["input_ids"][b, :n].tolist())])
    # next-token cross-entropy, by hand: position t predicts label t+1; -100 is out of the mean
    logp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
    tgt = labels[:, 1:]
    keep = tgt != -100
    nll = -logp.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)[keep]
    want = float(nll.mean())
    got = json.loads((tmp_path / "t" / "train_log.jsonl").read_text().splitlines()[0])["loss"]
    assert keep.sum() > 10
    assert got == pytest.approx(want, rel=2e-3), (got, want)  # the Trainer logs the loss rounded to 4 digits


def test_lora_moves_and_the_base_stays_bit_identical(tiny_model, tiny_data, tmp_path):
    from tbr.stages.train import build_trainer
    trainer, _, _ = build_trainer(tmp_path / "t", make_rows(tiny_model, tiny_data), model_name=str(tiny_model),
                                  cfg=train_cfg(), dtype="float32", progress=False)
    model = trainer.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    lora = [n for n in before if "lora_" in n]
    assert lora and all(not before[n].any() for n in lora if "lora_B" in n)  # B starts at zero
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(lora)
    trainer.train()
    after = dict(model.named_parameters())
    moved = [n for n in lora if not torch.equal(before[n], after[n].detach())]
    assert len(moved) == len(lora), sorted(set(lora) - set(moved))[:5]
    for n in before:
        if n not in trainable:
            assert torch.equal(before[n], after[n].detach()), f"frozen weight {n} changed"
    base = dict(_base(tiny_model).named_parameters())
    for n, p in after.items():  # and they are the checkpoint's own values, not merely unchanged copies
        if n in trainable:
            continue
        key = n.replace("base_model.model.", "").replace(".base_layer", "")
        assert torch.equal(p.detach(), base[key].detach()), n


def test_merged_model_is_base_plus_scaled_adapter(tiny_model, tiny_data, tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from tbr.stages.train import train
    out = tmp_path / "t"
    train(out, make_rows(tiny_model, tiny_data), model_name=str(tiny_model),
          cfg=train_cfg("train.merge=true", "train.lora.r=4", "train.lora.alpha=8"), dtype="float32", progress=False)
    merged = AutoModelForCausalLM.from_pretrained(out / "model" / "merged", dtype=torch.float32).eval()
    base = _base(tiny_model)
    ad = load_file(out / "model" / "adapter_model.safetensors")
    name = "model.layers.0.self_attn.q_proj"
    a = next(v for k, v in ad.items() if name in k and "lora_A" in k)
    b = next(v for k, v in ad.items() if name in k and "lora_B" in k)
    w0 = dict(base.named_parameters())[f"{name}.weight"].detach()
    w = dict(merged.named_parameters())[f"{name}.weight"].detach()
    assert b.abs().sum() > 0
    assert torch.allclose(w, w0 + (b @ a) * (8 / 4), atol=1e-6)
    # and the whole forward pass: merged logits equal the unmerged base + adapter
    unmerged = PeftModel.from_pretrained(_base(tiny_model), out / "model").eval()
    ids = torch.tensor([[1, 5, 9, 13, 2, 7]])
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=ids).logits, unmerged(input_ids=ids).logits, atol=1e-5)
        assert not torch.allclose(merged(input_ids=ids).logits, base(input_ids=ids).logits, atol=1e-5)
