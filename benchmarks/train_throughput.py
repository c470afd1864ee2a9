"""Training throughput: tbr's trainer against a plain TRL SFTTrainer with its default settings.

Same model (default: the embedded smollm2-135m), same data (the built-in general + safety rows,
reflections included, rendered with the model's chat template), same batch size, same LoRA
config, same number of optimizer steps; the two run one after the other in this process,
`--repeats` times, alternating. Throughput counts real (non-pad) tokens: each trainer's
collator is wrapped and counts the tokens of the rows it batches; the first `--warmup` steps
are left out of both time and tokens.

tbr:  bf16 weights where the CPU has bf16 units (fp32 LoRA adapters), LoRA on every linear
      layer, no gradient checkpointing, group_by_length batches, our pre-tokenized masking,
      and the LM head run on the trained (completion) positions only (train.completion_head;
      TRL's fused head scores every position on a CPU).
TRL:  SFTConfig defaults (bf16=True autocast over fp32 weights, as TRL loads a model given by
      path; gradient_checkpointing=True; random batches), a conversational prompt-completion
      data set, the same LoRA config and batch size. On a CPU without bf16 units, bf16=False:
      emulated bf16 autocast there is hours per step.

FLOP/s of tbr, per real token (N = weights of every matmul, the tied LM head once):
  6N  the usual model-FLOPs convention (forward 2N, backward 4N), reported as "MFU";
  4N  what LoRA actually computes: forward 2N plus the input gradients 2N; the weight
      gradients of the frozen base (the other 2N) are never formed. Attention's own
      seq-length term is left out of both (under 5% at these lengths).
Either is given as a share of a matmul peak measured on the spot (2048^3, same threads), in
the dtype tbr computes in.

Measured (2-core AMD EPYC, bf16 peak about 0.8 TFLOP/s on the spot, embedded model, batch 8,
1 warmup + 6 steps, 2026-12-03):
  completion_head off: 238 tokens/s (21% of peak, 6N); on: 328 tokens/s (30%): kept on.
  TRL defaults 98.8 tokens/s in the same process: ratio 2.58 before, 3.21 with it.

    python benchmarks/train_throughput.py                 # embedded model, 1 warmup + 6 steps
    python benchmarks/train_throughput.py --tiny          # quick smoke with a tiny model
The last line is exactly `ratio: X` (tbr tokens/s over TRL tokens/s).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from _common import emit_summary, matmul_params, matmul_peak  # noqa: E402  (benchmarks/ is on sys.path)


def rows_for(model_name: str, n_general: int, n_safety: int) -> list[dict[str, Any]]:
    from tbr.data.sources import load_training
    from tbr.models import load_tokenizer
    from tbr.stages import build as B
    gen = load_training("general", "builtin", n_general, 0)
    saf = load_training("safety", "builtin", n_safety, 0)
    refl = {r["id"]: r.get("builtin_reflection") for r in saf}
    rows, _ = B.mix(gen, saf, refl, 1.0, 0)
    tok = load_tokenizer(model_name)
    for r in rows:
        r["prompt_text"], r["completion_text"] = B.render(tok, r["prompt"], r["target"])
    return rows


class StepClock:
    def __init__(self) -> None:
        self.times: list[float] = []

    def callback(self) -> Any:
        from transformers import TrainerCallback
        clock = self

        class C(TrainerCallback):
            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                clock.times.append(time.perf_counter())
        return C()


def measure(trainer: Any, warmup: int, steps: int) -> dict[str, float]:
    from tbr.stages.train import CountingCollator
    coll = trainer.data_collator
    if not isinstance(coll, CountingCollator):
        coll = trainer.data_collator = CountingCollator(coll)
    clock = StepClock()
    trainer.add_callback(clock.callback())
    trainer.train()
    t = clock.times
    if len(t) < warmup + steps:
        raise SystemExit(f"only {len(t)} steps ran")
    seconds = t[warmup + steps - 1] - t[warmup - 1]
    tokens = sum(coll.tokens[warmup:warmup + steps])
    return {"seconds": seconds, "tokens": tokens, "tok_s": tokens / seconds, "steps_s": steps / seconds}


def tbr_trainer(model: str, rows: list[dict[str, Any]], out: Path, a: argparse.Namespace) -> Any:
    from tbr.config import load_config
    from tbr.stages.train import build_trainer
    cfg = load_config(None, [f"train.max_steps={a.warmup + a.steps}", f"train.batch_size={a.batch_size}",
                             f"train.max_length={a.max_length}", "train.save_steps=1000000",
                             *[f"train.{s}" for s in a.tbr_set]]).train
    trainer, _, counts = build_trainer(out, rows, model_name=model, cfg=cfg, dtype=a.tbr_dtype, progress=False)
    trainer.args.logging_steps = 1000000
    return trainer, cfg, counts


def trl_trainer(model: str, rows: list[dict[str, Any]], out: Path, a: argparse.Namespace, cfg: Any) -> Any:
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from tbr.models import cpu_has_bf16, load_tokenizer, resolve
    # TRL's default bf16 autocast on a CPU without bf16 units (AVX2 only) runs emulated bf16
    # matmuls, about 300x slower than fp32 (60 s for one 2048^3 matmul on a 2-core Zen 3): a
    # step would take hours, and nobody would train that way. There the baseline is TRL's
    # defaults with bf16 off, which is what such a user sets.
    extra = {} if cpu_has_bf16() else {"bf16": False}
    ds = Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}],
                             "completion": [{"role": "assistant", "content": r["target"]}]} for r in rows])
    args = SFTConfig(output_dir=str(out), per_device_train_batch_size=a.batch_size, max_steps=a.warmup + a.steps,
                     max_length=a.max_length, report_to=[], save_strategy="no", logging_steps=1000000,
                     disable_tqdm=True, use_cpu=True, dataloader_pin_memory=False, **extra)
    lora = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=list(cfg.lora.target_modules), task_type="CAUSAL_LM")
    return SFTTrainer(model=resolve(model), args=args, train_dataset=ds, processing_class=load_tokenizer(model, "right"),
                      peft_config=lora)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--tiny", action="store_true", help="a tiny model made in code (smoke test)")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1, help="alternate tbr / TRL this many times")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: physical cores)")
    ap.add_argument("--tbr-dtype", default="auto")
    ap.add_argument("--tbr-set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a train.* key for tbr's side, e.g. lora.target_modules=[q_proj,v_proj]")
    ap.add_argument("--skip-trl", action="store_true", help="tbr only (for trying variants)")
    a = ap.parse_args()

    import psutil
    import torch
    threads = a.threads or psutil.cpu_count(logical=False) or os.cpu_count() or 1
    torch.set_num_threads(threads)
    tmp = Path(tempfile.mkdtemp(prefix="tbr-bench-"))
    model = a.model
    if a.tiny:
        from tbr.testing import make_tiny_model
        model = str(make_tiny_model(tmp / "tiny", hidden_size=128, layers=2))
    from tbr.models import resolve, resolve_dtype
    resolve(model)  # dequantize/cache the embedded model outside the timed part
    rows = rows_for(model, 200, 70)
    pdt = str(resolve_dtype(a.tbr_dtype)).replace("torch.", "")  # the dtype tbr's side computes in
    peak = matmul_peak(threads, pdt)
    print(f"threads {threads}; {pdt} matmul peak {peak / 1e9:.0f} GFLOP/s; {len(rows)} rows; "
          f"batch {a.batch_size}; {a.warmup} warmup + {a.steps} timed steps", flush=True)
    res: dict[str, list[dict[str, float]]] = {"tbr": [], "trl": []}
    n_mm = None
    for rep in range(a.repeats):
        tr, cfg, counts = tbr_trainer(model, rows, tmp / f"tbr{rep}", a)
        n_mm = matmul_params(tr.model)
        p0 = matmul_peak(threads, pdt)
        r = measure(tr, a.warmup, a.steps)
        r["peak"] = max(p0, matmul_peak(threads, pdt))  # measured around the run: the machine may be shared
        res["tbr"].append(r)
        print(f"[{rep}] tbr  {counts['dtype']:>8} weights: {r['tok_s']:8.1f} tokens/s  {r['steps_s']:.3f} steps/s "
              f"({r['tokens']} tokens in {r['seconds']:.1f} s); 6N = {100 * 6 * n_mm * r['tok_s'] / r['peak']:.0f}% "
              f"of a {r['peak'] / 1e9:.0f} GFLOP/s peak measured around it", flush=True)
        del tr
        if a.skip_trl:
            continue
        tt = trl_trainer(model, rows, tmp / f"trl{rep}", a, cfg)
        wdt = str(next(tt.model.parameters()).dtype).replace("torch.", "")
        r = measure(tt, a.warmup, a.steps)
        res["trl"].append(r)
        trl_bf16 = bool(tt.args.bf16)
        print(f"[{rep}] TRL  {wdt:>8} weights, bf16 autocast {trl_bf16}: {r['tok_s']:8.1f} tokens/s  "
              f"{r['steps_s']:.3f} steps/s ({r['tokens']} tokens in {r['seconds']:.1f} s)", flush=True)
        del tt
    tbr_tok = sum(r["tokens"] for r in res["tbr"]) / sum(r["seconds"] for r in res["tbr"])
    lora = not any(s.replace(" ", "").lower() == "lora.enabled=false" for s in a.tbr_set)
    f6 = 6 * n_mm * tbr_tok
    f4 = (4 if lora else 6) * n_mm * tbr_tok
    peak = max(r["peak"] for r in res["tbr"])
    print(f"tbr: {tbr_tok:.1f} tokens/s; N = {n_mm / 1e6:.1f}M matmul weights; "
          f"6N: {f6 / 1e9:.0f} GFLOP/s = {100 * f6 / peak:.0f}% of peak; "
          f"{'4N (LoRA: no frozen weight grads)' if lora else '6N'}: {f4 / 1e9:.0f} GFLOP/s = {100 * f4 / peak:.0f}% of peak")
    if a.skip_trl:
        return 0
    trl_tok = sum(r["tokens"] for r in res["trl"]) / sum(r["seconds"] for r in res["trl"])
    print(f"TRL defaults: {trl_tok:.1f} tokens/s")
    base = "TRL SFTTrainer defaults" + ("" if trl_bf16 else " (bf16 off: no bf16 units)")
    emit_summary("training tokens/s", tbr_tok, "tokens/s", base, trl_tok, threads,
                 peak_share=f6 / peak, flops="6N", peak_dtype=pdt, peak_gflops=round(peak / 1e9))
    print(f"ratio: {tbr_tok / trl_tok:.2f}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    sys.exit(main())
