"""tbr's completion-only SFT loss (train.completion_head): the model's own causal-LM loss, exactly,
with the LM head run on the trained positions alone; and training with it follows the same loss
curve as TRL's own loss."""
from __future__ import annotations

import json

import pytest

from tbr.stages.sft_loss import IGNORE, completion_loss


def _batch(tiny_model):
    import torch

    from tbr.models import load_tokenizer
    tok = load_tokenizer(str(tiny_model))
    ids = [tok("write the number three in words: three", add_special_tokens=False)["input_ids"],
           tok("how do I kill a python process? run kill", add_special_tokens=False)["input_ids"]]
    n = max(map(len, ids))
    x = torch.full((2, n), tok.pad_token_id or 0)
    mask = torch.zeros((2, n), dtype=torch.long)
    labels = torch.full((2, n), IGNORE)
    for b, row in enumerate(ids):
        x[b, :len(row)] = torch.tensor(row)
        mask[b, :len(row)] = 1
        labels[b, len(row) // 2:len(row)] = torch.tensor(row[len(row) // 2:])  # the "prompt" half is masked
    return {"input_ids": x, "attention_mask": mask, "labels": labels}


def test_completion_loss_is_the_models_loss(tiny_model):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.float32)
    inputs = _batch(tiny_model)
    want = model(**inputs).loss
    assert completion_loss(model, inputs).item() == pytest.approx(want.item(), rel=1e-5)
    # the Trainer's gradient-accumulation form: the sum over trained tokens, over the count it passes
    n = int((inputs["labels"][:, 1:] != IGNORE).sum())
    assert completion_loss(model, inputs, num_items_in_batch=2 * n).item() == pytest.approx(want.item() / 2, rel=1e-5)
    # through a PEFT model, LoRA layers included (B initialised non-zero so they change the output)
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    for name, p in peft.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    got, ref = completion_loss(peft, inputs), peft(**inputs).loss
    assert got.item() == pytest.approx(ref.item(), rel=1e-5) and abs(got.item() - want.item()) > 1e-4
    got.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n_, p in peft.named_parameters() if "lora_" in n_)


def test_training_follows_trls_loss(tiny_model, tiny_data, tmp_path):
    from tbr.stages.train import train
    from test_train import make_rows, train_cfg
    rows = make_rows(tiny_model, tiny_data)
    logs = {}
    for flag in ("true", "false"):
        out = tmp_path / flag
        train(out, rows, model_name=str(tiny_model), dtype="float32", progress=False,
              cfg=train_cfg("train.lora.dropout=0.0", f"train.completion_head={flag}"))
        logs[flag] = [json.loads(x)["loss"] for x in (out / "train_log.jsonl").read_text().splitlines() if x.strip()]
    assert len(logs["true"]) == 3
    assert logs["true"] == pytest.approx(logs["false"], rel=1e-4)
