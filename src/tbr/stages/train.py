"""The train stage: supervised fine-tuning through TRL's SFTTrainer, LoRA (PEFT) or full.

We tokenize ourselves (tbr.stages.build.tokenize_row) and hand TRL `input_ids` plus `labels` with the
prompt set to -100: TRL uses a given `labels` column as is, so the masking is exactly the one
our tests check token by token (on the batches the trainer feeds the model), whatever TRL's
flags do. Padding-free batches (`train.padding_free`) concatenate a batch into one row with
position ids restarting per sample; with SDPA and no KV cache no sample attends to another.

Checkpoints every `save_steps`; a checkpoint counts as complete once our marker file is in it
(written after the Trainer's last file). The same call after a kill -9 resumes from the newest
complete checkpoint; a complete checkpoint whose files cannot be read is a TbrError.

Several processes (`accelerate launch`, DDP/FSDP/DeepSpeed, or 2 CPU processes over gloo):
every rank trains, rank 0 alone writes the model, log, plot and summary (tbr.distributed;
tbr.pipeline.run_launched runs the pipeline on rank 0 while the other ranks join each
`train` call it makes).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from tbr import distributed, quiet
from tbr.distributed import barrier, gather, init, world
from tbr.errors import TbrError
from tbr.generation import reset_threads
from tbr.grid import Cell, train_config
from tbr.io import atomic_write_json, publish_mode, read_jsonl
from tbr.models import load_tokenizer, resolve, resolve_device, resolve_dtype
from tbr.report.plots import loss_curve
from tbr.runs import fingerprint
from tbr.stages.build import IGNORE, tokenize_row
from tbr.stages.checkpoints import (
    COMPLETE,
    check_checkpoint,
    ckpt_step,
    latest_checkpoint,
    truncate_log,
)
from tbr.stages.context import Context
from tbr.stages.runner import run_stage
from tbr.stages.sft_loss import completion_trainer_class
from tbr.stages.train_dpo import build_dpo_trainer
from tbr.stages.trainer_common import lora_config, shared_trainer_args, steps_hint

NAME = "train"


# -- data -----------------------------------------------------------------------------------

def tokenized_dataset(tok: Any, rows: list[dict[str, Any]], max_length: int) -> tuple[Any, dict[str, Any]]:
    from datasets import Dataset  # datasets: heavy, loaded on first use
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


class CountingCollator:
    """Wraps the trainer's collator: counts the batches and real (non-pad) tokens this rank saw."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.batches = 0
        self.rows = 0
        self.tokens: list[int] = []  # real tokens per batch, in order

    def __call__(self, examples: list[dict[str, Any]]) -> Any:
        self.batches += 1
        self.rows += len(examples)
        self.tokens.append(sum(example_tokens(e) for e in examples))
        return self.inner(examples)


def example_tokens(e: dict[str, Any]) -> int:
    """Tokens the model runs on for one example: its row (SFT), or prompt+chosen and
    prompt+rejected (a DPO pair, two sequences)."""
    if "prompt_ids" in e:
        return 2 * len(e["prompt_ids"]) + len(e["chosen_ids"]) + len(e["rejected_ids"])
    return len(e["input_ids"])


def _callbacks(log_file: Path) -> list[Any]:
    from transformers import TrainerCallback  # transformers: heavy, loaded on first use

    class JsonlLog(TrainerCallback):
        """Appends each optimizer step's log to train_log.jsonl (flushed: it survives a kill)."""

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if not state.is_world_process_zero or not logs or "loss" not in logs:
                return  # the end-of-training summary goes to train_summary.json instead
            row = {"step": state.global_step}
            row.update({k: v for k, v in logs.items() if isinstance(v, (int, float))})
            with open(log_file, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()

    class MarkComplete(TrainerCallback):
        """The Trainer writes a checkpoint file by file; our marker, written last and atomically,
        is what makes it count as complete."""

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.is_world_process_zero:
                d = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if d.is_dir():
                    atomic_write_json(d / COMPLETE, {"step": state.global_step})
    return [JsonlLog(), MarkComplete()]


def step_bar(label: str, collator: CountingCollator) -> Any:
    """A TrainerCallback drawing one tqdm bar per training run: steps, with loss, tokens/s
    and ETA in its postfix. It replaces the Trainer's own bar, which prints every log dict
    as a raw line between bars."""
    from transformers import TrainerCallback  # transformers: heavy, loaded on first use

    class StepBar(TrainerCallback):
        def __init__(self) -> None:
            self.bar: Any = None
            self.t0 = 0.0
            self.tok0 = 0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.is_world_process_zero:
                self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc=label, unit="step",
                                dynamic_ncols=True, leave=False)
                self.t0, self.tok0 = time.perf_counter(), sum(collator.tokens)

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if self.bar is None or not logs or "loss" not in logs:
                return
            dt = max(1e-9, time.perf_counter() - self.t0)
            self.bar.set_postfix(loss=f"{float(logs['loss']):.3f}",
                                 tok_s=f"{(sum(collator.tokens) - self.tok0) / dt:.0f}", refresh=True)

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.bar is not None:
                self.bar.close()
                self.bar = None
    return StepBar()


# -- trainer --------------------------------------------------------------------------------

def sft_config(t: Any, out: Path, *, bf16: bool, seed: int, steps_hint: int, cpu: bool, progress: bool) -> Any:
    from trl import SFTConfig  # trl: heavy, loaded on first use
    return SFTConfig(
        **shared_trainer_args(t, out, bf16=bf16, seed=seed, steps_hint=steps_hint, cpu=cpu),
        num_train_epochs=t.epochs, max_steps=t.max_steps, learning_rate=t.learning_rate,
        per_device_train_batch_size=t.batch_size,
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        # rows come truncated by tokenize_row; padding-free insists on max_length=None
        max_length=None if t.padding_free else t.max_length, padding_free=t.padding_free,
        remove_unused_columns=False,
    )


def build_trainer(out_dir: Path, rows: list[dict[str, Any]], *, model_name: str, cfg: Any, seed: int = 0,
                  dtype: str = "auto", device: str = "auto", progress: bool = True) -> tuple[Any, Any, dict[str, Any]]:
    """(trainer, tokenizer, counts): tbr's trainer, ready to `train()`. Used by `train` and by
    benchmarks/train_throughput.py, so the benchmark measures exactly what we run."""
    import torch  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
    from transformers import AutoModelForCausalLM  # transformers: heavy, loaded on first use
    from trl import SFTTrainer  # trl: heavy, loaded on first use

    out_dir = Path(out_dir)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    tok = load_tokenizer(model_name, padding_side="right")
    ds, counts = tokenized_dataset(tok, rows, cfg.max_length)

    # Weights in the compute dtype: on a CPU with bf16 units, bf16 weights plus fp32 LoRA
    # adapters (PEFT upcasts them) run about 1.6x faster than fp32 weights with bf16 autocast.
    kw: dict[str, Any] = {"dtype": dt}
    if cfg.padding_free:
        kw["attn_implementation"] = "sdpa"  # splits the row at position-id restarts: no leaks
    model = AutoModelForCausalLM.from_pretrained(resolve(model_name), **kw)
    model.config.use_cache = False  # a cache would let padding-free samples see each other
    hint = steps_hint(len(ds), batch_size=cfg.batch_size, grad_accum=cfg.grad_accum, epochs=cfg.epochs,
                      max_steps=cfg.max_steps)
    args = sft_config(cfg, out_dir / "checkpoints", bf16=dt == torch.bfloat16, seed=seed, steps_hint=hint,
                      cpu=dev == "cpu", progress=progress)
    cls = completion_trainer_class() if cfg.completion_head else SFTTrainer
    trainer = cls(model=model, args=args, train_dataset=ds, processing_class=tok, peft_config=lora_config(cfg))
    counts.update({"method": "sft", "dtype": str(dt).replace("torch.", ""), "device": dev})
    return wire(trainer, out_dir, progress, counts), tok, counts


def wire(trainer: Any, out_dir: Path, progress: bool, counts: dict[str, Any]) -> Any:
    """What tbr adds to any TRL trainer: the JSONL log, the checkpoint marker, token counting,
    its own progress bar instead of the Trainer's printed dicts, and parameter counts."""
    from transformers.trainer_callback import (  # transformers: heavy, loaded on first use
        PrinterCallback,
        ProgressCallback,
    )
    for cb in _callbacks(Path(out_dir) / "train_log.jsonl"):
        trainer.add_callback(cb)
    trainer.data_collator = CountingCollator(trainer.data_collator)
    if not quiet.VERBOSE:  # --verbose brings the Trainer's raw log lines back
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
    if progress:
        trainer.add_callback(step_bar(f"{counts.get('method', 'train')} {Path(out_dir).name}", trainer.data_collator))
    assert trainer.model is not None  # the Trainer was given `model`, so it holds one
    n_params = sum(p.numel() for p in trainer.model.parameters())
    n_train = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    counts.update({"params": int(n_params), "trainable_params": int(n_train)})
    return trainer


def train(out_dir: Path, rows: list[dict[str, Any]], *, model_name: str, cfg: Any, seed: int = 0,
          dtype: str = "auto", device: str = "auto", progress: bool = True, method: str = "sft",
          template: str = "chat", system_prompt: str | None = None, merge: bool | None = None) -> dict[str, Any]:
    """Fine-tune `model_name`: SFT on rendered rows (prompt_text, completion_text), or with
    method="dpo" DPO on preference pairs (prompt, chosen, rejected; rendered by TRL with
    `template`). Writes out_dir/model (adapter or full model, with the tokenizer;
    out_dir/model/merged too with train.merge), train_log.jsonl, loss.png, train_summary.json."""
    job = dict(out_dir=str(out_dir), rows=rows, model_name=model_name, cfg=cfg, seed=seed, dtype=dtype,
               device=device, progress=progress, method=method, template=template, system_prompt=system_prompt,
               merge=merge)
    if distributed.leading():
        distributed.bcast(job)  # the other ranks of a `tbr train` launch join this call
    return train_this_rank(**job)


def _resume_point(out: Path, rank: int) -> Path | None:
    """The checkpoint to resume from (checked whole), with the loss log cut back to it."""
    resume = latest_checkpoint(out / "checkpoints")
    log_file = out / "train_log.jsonl"
    if resume is not None:
        check_checkpoint(resume)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        if resume is None and log_file.exists():
            log_file.unlink()  # a fresh start: an old log would mix two runs' curves
        elif resume is not None and log_file.exists():
            truncate_log(log_file, ckpt_step(resume))
    barrier()
    return resume


def train_this_rank(out_dir: str, rows: list[dict[str, Any]], *, model_name: str, cfg: Any, seed: int, dtype: str,
                    device: str, progress: bool, method: str = "sft", template: str = "chat",
                    system_prompt: str | None = None, merge: bool | None = None) -> dict[str, Any]:
    rank, ws = world()
    init()
    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    log_file = out / "train_log.jsonl"
    resume = _resume_point(out, rank)
    if method == "dpo":
        trainer, tok, counts = build_dpo_trainer(out, rows, model_name=model_name, cfg=cfg, seed=seed, dtype=dtype,
                                                 device=device, template=template, system_prompt=system_prompt)
        trainer = wire(trainer, out, progress and rank == 0, counts)
    else:
        trainer, tok, counts = build_trainer(out, rows, model_name=model_name, cfg=cfg, seed=seed, dtype=dtype,
                                             device=device, progress=progress and rank == 0)
    t0 = time.perf_counter()
    try:
        result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except (ValueError, RuntimeError, OSError, KeyError) as e:
        if resume is not None and trainer.state.global_step <= ckpt_step(resume):
            raise TbrError(f"cannot resume from {resume}: {str(e).splitlines()[0] if str(e) else type(e).__name__} "
                           f"(delete {ckpt_dir} to start over)") from None
        raise
    seconds = time.perf_counter() - t0
    coll: CountingCollator = trainer.data_collator
    per_rank = gather({"rank": rank, "batches": coll.batches, "rows": coll.rows, "tokens": sum(coll.tokens)})

    # save: every rank takes part (FSDP / ZeRO-3 gather the shards), rank 0 writes
    final = out / "model"
    tmp = out / ".model.tmp"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    barrier()
    trainer.save_model(str(tmp))
    barrier()
    if rank == 0:
        (tmp / "training_args.bin").unlink(missing_ok=True)  # a pickle; the manifest holds the config
        tok.padding_side = "left"
        tok.save_pretrained(tmp)
        if (cfg.merge if merge is None else merge) and cfg.lora.enabled:
            _save_merged(tmp, model_name, counts["dtype"], tok)
        publish_mode(tmp)  # safetensors leaves 0600 files: make the model readable like the rest
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        loss_curve(log_file, out / "loss.png")
    if method == "dpo" and rank == 0 and log_file.exists():  # where the preference margins ended
        last = [json.loads(x) for x in log_file.read_text(encoding="utf-8").splitlines() if x.strip()][-1:]
        counts.update({k: v for row in last for k, v in row.items() if k.startswith("rewards/")})
    counts.update({"steps": int(result.global_step), "train_loss": float(result.training_loss),
                   "resumed_from_step": ckpt_step(resume), "world_size": ws,
                   "padding_free": bool(cfg.padding_free), "seconds": round(seconds, 2),
                   "tokens_seen": sum(r["tokens"] for r in per_rank), "per_rank": per_rank})
    if rank == 0:
        atomic_write_json(out / "train_summary.json", counts)
        shutil.rmtree(ckpt_dir, ignore_errors=True)  # the final model supersedes them
    barrier()
    return counts


def _save_merged(adapter_dir: Path, model_name: str, dtype: str, tok: Any) -> None:
    """Base model plus the saved adapter, merged: built from the files (not the live, possibly
    sharded model) so it is the same under DDP, FSDP and ZeRO-3."""
    import torch  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
    from peft import PeftModel  # peft: heavy, loaded on first use
    from transformers import AutoModelForCausalLM  # transformers: heavy, loaded on first use

    base = AutoModelForCausalLM.from_pretrained(resolve(model_name), dtype=getattr(torch, dtype))
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.config.use_cache = True
    merged.save_pretrained(adapter_dir / "merged")
    tok.save_pretrained(adapter_dir / "merged")


def run(ctx: Context) -> None:
    """One fine-tune per cell: SFT on the cell's built rows, DPO on its preference pairs, or
    SFT then DPO from the merged SFT model (train.method)."""
    tc = ctx.cfg.train
    bc = ctx.cfg.build
    tcfg = train_config(ctx.cfg)
    for c in ctx.grid:
        tdir = ctx.root / "train" / c.key
        bfp = ctx.build_fps[c]
        extra = [ctx.pairs_fps[c]] if tc.method != "sft" else []  # SFT cells keep their old fingerprints
        tfp = fingerprint("train", tcfg, c.model, c.seed, bfp, ctx.dev, *extra)

        def do_train(out: Path, c: Cell = c) -> dict[str, Any]:
            reset_threads()  # a generation before it may have lowered them for a busy machine
            kw: dict[str, Any] = dict(cfg=tc, seed=c.seed, progress=ctx.progress, **ctx.dev)
            start = c.model
            counts: dict[str, Any] = {}
            if tc.method in ("sft", "sft+dpo"):
                rows = read_jsonl(ctx.root / "build" / c.key / "train.jsonl")
                if tc.method == "sft":
                    return train(out, rows, model_name=c.model, **kw)
                sft_dir = out / "sft"
                # a kill during DPO keeps the finished SFT phase: its summary is written last
                done = (sft_dir / "train_summary.json").exists() and (sft_dir / "model").is_dir()
                counts["sft"] = (json.loads((sft_dir / "train_summary.json").read_text(encoding="utf-8")) if done
                                 else train(sft_dir, rows, model_name=c.model, merge=True, **kw))
                start = str(sft_dir / "model" / "merged") if tc.lora.enabled else str(sft_dir / "model")
            pairs = read_jsonl(ctx.root / "pairs" / c.key / "pairs.jsonl")
            counts.update(train(out, pairs, model_name=start, method="dpo", template=bc.template,
                                system_prompt=bc.system_prompt, **kw))
            if tc.method == "sft+dpo":
                counts["method"] = "sft+dpo"
                atomic_write_json(out / "train_summary.json", counts)
            return counts
        inputs = {"build": bfp, **({"pairs": ctx.pairs_fps[c]} if extra else {})}
        run_stage(tdir, stage=NAME, label=f"train [{ctx.label(c)}]", fp=tfp, config=tcfg,
                  inputs=inputs, fn=do_train, outputs=["train_log.jsonl", "train_summary.json"],
                  owner=ctx.label(c))
        ctx.trained[c] = (str(tdir / "model"), tfp)
