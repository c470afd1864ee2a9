"""TBR-DPO: TRL's DPOTrainer on the pairs stage's preference pairs, with the same LoRA, dtype,
checkpoint, log and distributed paths as SFT (tbr.stages.train runs both).

The pairs go to TRL as conversations (prompt = the user turn, chosen / rejected = one assistant
turn each), so TRL renders them with the model's chat template exactly as build.render does for
SFT; with the paper's Alpaca template they go as plain text (TRL appends the end of sequence).
With LoRA the reference model is the same network with its adapters switched off, i.e. the
model DPO started from (the base model, or the merged SFT model under train.method sft+dpo).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tbr.errors import TbrError
from tbr.models import load_tokenizer, resolve, resolve_device, resolve_dtype
from tbr.prompts import alpaca_prompt
from tbr.stages.trainer_common import lora_config, shared_trainer_args, steps_hint


def dpo_example(pair: dict[str, Any], template: str = "chat", system_prompt: str | None = None) -> dict[str, Any]:
    """One pair in the layout TRL's DPOTrainer reads (conversational for the chat template)."""
    if template == "alpaca":
        return {"prompt": alpaca_prompt(pair["prompt"]), "chosen": pair["chosen"], "rejected": pair["rejected"]}
    prompt = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + \
        [{"role": "user", "content": pair["prompt"]}]
    return {"prompt": prompt, "chosen": [{"role": "assistant", "content": pair["chosen"]}],
            "rejected": [{"role": "assistant", "content": pair["rejected"]}]}


def dpo_config(t: Any, out: Path, *, bf16: bool, seed: int, steps_hint: int, cpu: bool) -> Any:
    from trl import DPOConfig  # trl: heavy, loaded on first use

    d = t.dpo
    return DPOConfig(
        **shared_trainer_args(t, out, bf16=bf16, seed=seed, steps_hint=steps_hint, cpu=cpu),
        num_train_epochs=d.epochs, max_steps=d.max_steps, learning_rate=d.learning_rate,
        per_device_train_batch_size=d.batch_size, beta=d.beta, loss_type=[d.loss_type], max_length=t.max_length,
    )


def build_dpo_trainer(out_dir: Path, pairs: list[dict[str, Any]], *, model_name: str, cfg: Any, seed: int = 0,
                      dtype: str = "auto", device: str = "auto", template: str = "chat",
                      system_prompt: str | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """(trainer, tokenizer, counts) for DPO on `pairs`, ready to `train()`."""
    import torch  # torch: heavy, loaded on first use
    from datasets import Dataset  # datasets: heavy, loaded on first use
    from transformers import AutoModelForCausalLM  # transformers: heavy, loaded on first use
    from trl import DPOTrainer  # trl: heavy, loaded on first use

    if not pairs:
        raise TbrError("train.method dpo: no preference pairs (the untouched model refused every harmful "
                       "training prompt and the cell has no benign look-alikes); see pairs/*/manifest.json")
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    tok = load_tokenizer(model_name, padding_side="right")
    ds = Dataset.from_list([dpo_example(p, template, system_prompt) for p in pairs])
    model = AutoModelForCausalLM.from_pretrained(resolve(model_name), dtype=dt)
    model.config.use_cache = False
    d = cfg.dpo
    hint = steps_hint(len(ds), batch_size=d.batch_size, grad_accum=cfg.grad_accum, epochs=d.epochs,
                      max_steps=d.max_steps)
    args = dpo_config(cfg, Path(out_dir) / "checkpoints", bf16=dt == torch.bfloat16, seed=seed,
                      steps_hint=hint, cpu=dev == "cpu")
    trainer = DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, peft_config=lora_config(cfg))
    n = len(trainer.train_dataset)  # type: ignore[arg-type]  # a Dataset: from_list above
    counts = {"method": "dpo", "rows": n, "pairs": len(pairs), "dropped_too_long": len(pairs) - n,
              "safety_pairs": sum(1 for p in pairs if p.get("kind") == "safety"),
              "benign_pairs": sum(1 for p in pairs if p.get("kind") == "benign"),
              "beta": cfg.dpo.beta, "loss_type": cfg.dpo.loss_type, "dtype": str(dt).replace("torch.", ""),
              "device": dev}
    return trainer, tok, counts
