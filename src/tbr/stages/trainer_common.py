"""What the SFT and DPO trainers share, so both schedule, save, log and adapt alike: the
Trainer arguments, the LoRA config and the step count that sets the warm-up."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tbr.distributed import world


def shared_trainer_args(t: Any, out: Path, *, bf16: bool, seed: int, steps_hint: int, cpu: bool) -> dict[str, Any]:
    """Arguments SFTConfig and DPOConfig take alike: schedule, checkpointing, logging, devices."""
    return dict(
        output_dir=str(out), gradient_accumulation_steps=t.grad_accum,
        warmup_steps=max(0, int(round(t.warmup_ratio * steps_hint))), lr_scheduler_type="cosine",
        logging_steps=1, save_steps=t.save_steps, save_total_limit=2,
        bf16=bf16, gradient_checkpointing=t.gradient_checkpointing,  # set: TRL's DPOConfig default is on, slower on CPU
        report_to=[r for r in getattr(t, "report_to", []) if r != "none"], seed=seed, data_seed=seed, use_cpu=cpu,
        ddp_backend="gloo" if cpu and world()[1] > 1 else None,
        dataloader_num_workers=0, dataloader_pin_memory=not cpu,
        disable_tqdm=True,  # tbr draws its own bar (step_bar); the Trainer's prints raw log dicts
    )


def lora_config(cfg: Any) -> Any:
    """PEFT's LoraConfig from train.lora, or None for full fine-tuning."""
    if not cfg.lora.enabled:
        return None
    from peft import LoraConfig  # peft: heavy, loaded on first use
    return LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=list(cfg.lora.target_modules), task_type="CAUSAL_LM")


def steps_hint(rows: int, *, batch_size: int, grad_accum: int, epochs: float, max_steps: int) -> int:
    """Optimizer steps the run will take (max_steps, else epochs over the rows at the global batch)."""
    bs = batch_size * grad_accum * world()[1]
    return max_steps if max_steps > 0 else int(-(-rows * epochs // bs))
