"""The train stage: supervised fine-tuning through TRL's SFTTrainer, LoRA (PEFT) or full.

We tokenize ourselves (tbr.build.tokenize_row) and hand TRL `input_ids` plus `labels` with the
prompt set to -100: TRL uses a given `labels` column as is, so the masking is exactly the one
our tests check token by token, whatever TRL's flags do. Checkpoints every `save_steps`; the
same command after a kill resumes from the newest complete checkpoint.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from tbr.build import IGNORE, tokenize_row
from tbr.errors import TbrError
from tbr.io import atomic_write_json


def _log_callback(log_file: Path) -> Any:
    from transformers import TrainerCallback

    class JsonlLog(TrainerCallback):
        """Appends each logged step to train_log.jsonl (flushed: it survives a kill)."""

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if not state.is_world_process_zero or not logs or "train_runtime" in logs:
                return  # the end-of-training summary repeats the last step (it is in train_summary.json)
            row = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4)}
            row.update({k: v for k, v in logs.items() if isinstance(v, (int, float))})
            with open(log_file, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
    return JsonlLog()


def tokenized_dataset(tok: Any, rows: list[dict[str, Any]], max_length: int) -> tuple[Any, dict[str, int]]:
    from datasets import Dataset
    data: dict[str, list[Any]] = {"input_ids": [], "labels": []}
    dropped = tokens = supervised = 0
    for r in rows:
        ids, labels = tokenize_row(tok, r["prompt_text"], r["completion_text"], max_length)
        n_sup = sum(1 for x in labels if x != IGNORE)
        if n_sup == 0:
            dropped += 1  # prompt fills the cutoff: nothing to learn from
            continue
        data["input_ids"].append(ids)
        data["labels"].append(labels)
        tokens += len(ids)
        supervised += n_sup
    if not data["input_ids"]:
        raise TbrError(f"no training row fits train.max_length={max_length}")
    return Dataset.from_dict(data), {"rows": len(data["input_ids"]), "dropped_too_long": dropped,
                                     "tokens": tokens, "supervised_tokens": supervised}


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest checkpoint whose trainer state was fully written (a kill can leave a torn one)."""
    if not ckpt_dir.exists():
        return None
    good = []
    for p in ckpt_dir.glob("checkpoint-*"):
        try:
            step = int(p.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        state = p / "trainer_state.json"
        try:
            json.loads(state.read_text())
        except (OSError, ValueError):
            continue
        good.append((step, p))
    return max(good)[1] if good else None


def _sft_config_kwargs(SFTConfig: Any, t: Any, out: Path, bf16: bool, seed: int, steps_hint: int | None) -> Any:
    return SFTConfig(
        output_dir=str(out),
        num_train_epochs=t.epochs, max_steps=t.max_steps, learning_rate=t.learning_rate,
        per_device_train_batch_size=t.batch_size, gradient_accumulation_steps=t.grad_accum,
        warmup_steps=max(0, int(round(t.warmup_ratio * (steps_hint or 0)))), lr_scheduler_type="cosine",
        logging_steps=1, save_steps=t.save_steps, save_total_limit=2,
        bf16=bf16, gradient_checkpointing=t.gradient_checkpointing,
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        max_length=t.max_length, report_to=[], seed=seed, data_seed=seed,
        dataloader_num_workers=0, remove_unused_columns=False,
    )


def train(out_dir: Path, rows: list[dict[str, Any]], *, model_name: str, cfg: Any, seed: int = 0,
          dtype: str = "auto", device: str = "auto", progress: bool = True) -> dict[str, Any]:
    """Fine-tune `model_name` on rendered rows (prompt_text, completion_text); writes
    out_dir/model (adapter or full model, with the tokenizer), train_log.jsonl, loss.png."""
    import torch
    from transformers import AutoModelForCausalLM
    from trl import SFTTrainer

    from tbr.models import load_tokenizer, resolve, resolve_device, resolve_dtype

    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    log_file = out_dir / "train_log.jsonl"
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    tok = load_tokenizer(model_name, padding_side="right")
    ds, counts = tokenized_dataset(tok, rows, cfg.max_length)

    resume = latest_checkpoint(ckpt_dir)
    if resume is None and log_file.exists():
        log_file.unlink()  # a fresh start: an old log would mix two runs' curves
    elif resume is not None and log_file.exists():
        _truncate_log(log_file, _ckpt_step(resume))

    # Weights in the compute dtype: on a CPU with bf16 units, bf16 weights plus fp32 LoRA
    # adapters (PEFT upcasts them) run about 1.6x faster than fp32 and train just as well.
    model = AutoModelForCausalLM.from_pretrained(resolve(model_name), dtype=dt)
    model.config.use_cache = False
    peft_config = None
    if cfg.lora.enabled:
        from peft import LoraConfig
        peft_config = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                                 target_modules=list(cfg.lora.target_modules), task_type="CAUSAL_LM")
    bs = cfg.batch_size * cfg.grad_accum * max(1, int(os.environ.get("WORLD_SIZE", "1")))
    steps_hint = cfg.max_steps if cfg.max_steps > 0 else int(-(-len(ds) * cfg.epochs // bs))
    args = _sft_config_kwargs(__import__("trl").SFTConfig, cfg, ckpt_dir, dt == torch.bfloat16, seed, steps_hint)
    if not progress:
        args.disable_tqdm = True
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok,
                         peft_config=peft_config, callbacks=[_log_callback(log_file)])
    try:
        result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except (ValueError, RuntimeError, OSError) as e:
        if resume is not None and ("checkpoint" in str(e).lower() or "load" in str(e).lower()):
            raise TbrError(f"cannot resume from {resume}: {str(e).splitlines()[0]} "
                           f"(delete {ckpt_dir} to start over)") from None
        raise
    final = out_dir / "model"
    if trainer.is_world_process_zero():
        from tbr.io import atomic_dir
        with atomic_dir(final) as tmp:  # a kill leaves no half-saved model
            trainer.model.save_pretrained(tmp)
            tok.padding_side = "left"
            tok.save_pretrained(tmp)
            if cfg.merge and cfg.lora.enabled:
                merged = trainer.model.merge_and_unload()
                merged.save_pretrained(tmp / "merged")
                tok.save_pretrained(tmp / "merged")
        from tbr.plots import loss_curve
        loss_curve(log_file, out_dir / "loss.png")
        shutil.rmtree(ckpt_dir, ignore_errors=True)  # the final model supersedes them
    counts.update({"steps": int(result.global_step), "train_loss": float(result.training_loss),
                   "resumed_from_step": _ckpt_step(resume) if resume else 0,
                   "world_size": int(os.environ.get("WORLD_SIZE", "1"))})
    atomic_write_json(out_dir / "train_summary.json", counts)
    return counts


def _ckpt_step(p: Path | None) -> int:
    return int(p.name.split("-")[1]) if p else 0


def _truncate_log(log_file: Path, step: int) -> None:
    """Keep log rows up to the checkpoint we resume from, so the curve has no duplicate steps."""
    keep = []
    for line in log_file.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            break
        if row.get("step", 0) <= step:
            keep.append(line)
    from tbr.io import atomic_write_text
    atomic_write_text(log_file, "".join(k + "\n" for k in keep))
