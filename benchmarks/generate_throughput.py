"""Throughput of tbr's HF generation against the naive way, side by side in one process.

    .venv/bin/python benchmarks/generate_throughput.py              # embedded model, 64 prompts
    .venv/bin/python benchmarks/generate_throughput.py --dtype float32
    .venv/bin/python benchmarks/generate_throughput.py --tiny --n 8 --max-new-tokens 8   # smoke run

Both runs use the same model object (same dtype) and the same prompts: the
built-in pseudo-harmful suite (tbr.data.sources.builtin_eval), shuffled with a fixed seed,
first --n, each as one user turn rendered with the model's chat template.

- tbr: `hf_generate_chat` with its defaults (length-sorted batches, left padding, KV cache,
  early exit, inference mode, its CPU thread choice, decode attention without the per-head copy
  of the KV cache: tbr.decode_attention).
- tbr, model's sdpa: the same with `grouped_decode=False`, to measure that lever alone.
- naive: one prompt at a time through `model.generate`, greedy, same max_new_tokens.

Generated tokens are counted per prompt up to and including its first EOS. Prints tokens per
second of each, the fraction of identical outputs (batched and one-at-a-time greedy may differ
slightly in bf16: padding changes the matmul shapes, so near-ties can flip), and `ratio: X`
(tbr tokens/s over naive tokens/s) as the last line, after a `summary:` line for
benchmarks/summary.py. Share of peak: 2N FLOP per generated token (N = matmul weights, the head
included) over a matmul peak measured on the spot in the model's dtype. The machine may be
shared: the load average is printed; compare ratios, not absolute figures.

Measured 2026-12-04 on a 2-core AMD EPYC (avx512_bf16), embedded model, 64 prompts x 64 new
tokens, 2 threads, 3 alternating rounds (figures move about 10% run to run on this machine):
- bf16: tbr 696 tokens/s against 619 with the model's sdpa (decode attention x1.12, kept on;
  25/64 outputs identical, bf16 rounding of a different op order); naive one at a time 37.5
  tokens/s; ratio 18.6; 22% of the measured bf16 peak (2N).
- float32 (--dtype float32 --repeats 1): decode attention's greedy outputs identical to the
  model's sdpa on 64/64 prompts, and batched identical to one-at-a-time on 64/64; tbr 210
  tokens/s, naive 23.0, ratio 9.1.
- Levers measured and not kept: a static KV cache (`cache_implementation="static"`), alone no
  faster, and with `torch.compile` of the forward 2x slower (1 thread while the test suite ran
  on the other core: 20 s against 10.6 s, the compile itself 90 s); sdpa with forced GQA
  (TRANSFORMERS_SDPA_FORCE_GQA) 40% slower; float32 weights 2.5x slower than bf16; glibc malloc
  tuning (mallopt) within noise.
- Why 40x is out of reach here: one at a time runs at 37.5 tokens/s, 27 ms a token; a decode
  step at batch 64 with no attention history at all (one token, no cache) takes about 52 ms,
  so batching tops out near 64 x 27 / 52 = 33x before any attention, and the measured steps
  are about 85-95 ms. What is left is per-op overhead of 30 eager layers, which only a compiled
  or graph-captured decode step removes, and that was slower on this CPU.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _load_avg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=64, help="prompts (default 64)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=None,
                    help="tbr batch size (default: hf_generate_chat's default)")
    ap.add_argument("--model", default="smollm2-135m", help="registry name, folder or hub id")
    ap.add_argument("--dtype", default="auto", help="auto (bf16 where the CPU has avx512_bf16), bfloat16, float32")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tiny", action="store_true", help="a tiny random model made in code (smoke run)")
    ap.add_argument("--seed", type=int, default=0, help="shuffle seed for the prompts")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds of each batched way (default 3)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for both ways (default: torch's default for the naive way, "
                         "tbr's own choice, see tbr.generation.tune_threads, for tbr)")
    args = ap.parse_args(argv)

    import torch
    from _common import emit_summary, matmul_params, matmul_peak  # benchmarks/ is on sys.path

    from tbr.data.sources import builtin_eval
    from tbr.generation import DEFAULT_BATCH_SIZE, hf_generate_chat, last_run_stats, physical_cores, render_chat
    from tbr.models import load_model
    from tbr.prompts import mode_messages

    if args.threads:
        os.environ["TBR_THREADS"] = str(args.threads)  # tbr's backend then uses exactly this
        torch.set_num_threads(args.threads)
    default_threads = torch.get_num_threads()  # what plain model.generate runs on
    tmp = None
    model_name = args.model
    if args.tiny:
        from tbr.testing import make_tiny_model
        tmp = tempfile.TemporaryDirectory(prefix="tbr-bench-")
        model_name = str(make_tiny_model(Path(tmp.name) / "tiny"))

    rows = builtin_eval()
    random.Random(args.seed).shuffle(rows)
    rows = rows[: args.n]
    convs = [mode_messages(r["prompt"], "plain") for r in rows]

    t = time.perf_counter()
    model, tok = load_model(model_name, args.dtype, args.device)
    load_s = time.perf_counter() - t
    device = next(model.parameters()).device
    eos = {i for i in (tok.eos_token_id, model.generation_config.eos_token_id) if isinstance(i, int)}
    if isinstance(model.generation_config.eos_token_id, list):
        eos.update(model.generation_config.eos_token_id)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    bs = args.batch_size or DEFAULT_BATCH_SIZE
    print(f"model: {args.model if not args.tiny else 'tiny (random, made in code)'}  dtype: {model.dtype}  "
          f"device: {device}  loaded in {load_s:.1f} s", flush=True)
    print(f"prompts: {len(rows)}  max_new_tokens: {args.max_new_tokens}  tbr batch size: {bs}  "
          f"physical cores: {physical_cores()}, cpus: {os.cpu_count()}", flush=True)
    print(f"load average before: {_load_avg()}", flush=True)

    # warm-up (first-call allocations and lazy init): throughput still rose over the first few
    # full batched runs here, so one full untimed run, then the two batched ways alternate
    kw = {"batch_size": args.batch_size} if args.batch_size else {}
    hf_generate_chat(model, tok, convs[:2], max_new_tokens=2, progress=False)
    hf_generate_chat(model, tok, convs, max_new_tokens=args.max_new_tokens, progress=False, **kw)

    # --- tbr: hf_generate_chat with its defaults; and with the model's own sdpa attention (the
    # decode-attention lever alone), in alternating order over --repeats rounds
    runs: dict[bool, dict[str, float]] = {g: {"tokens": 0, "seconds": 0.0, "cpu": 0.0} for g in (True, False)}
    outs: dict[bool, list[str]] = {}
    for rep in range(args.repeats):
        for grouped in ((False, True) if rep % 2 == 0 else (True, False)):
            t, c = time.perf_counter(), time.process_time()
            outs[grouped] = hf_generate_chat(model, tok, convs, max_new_tokens=args.max_new_tokens,
                                             progress=False, grouped_decode=grouped, **kw)
            runs[grouped]["seconds"] += time.perf_counter() - t
            runs[grouped]["cpu"] += time.process_time() - c
            runs[grouped]["tokens"] += int(last_run_stats["generated_tokens"])
    tbr_out, tbr_tokens, tbr_s = outs[True], runs[True]["tokens"], runs[True]["seconds"]
    tbr_threads = torch.get_num_threads()
    print(f"tbr:   {tbr_tokens} tokens in {tbr_s:.1f} s = {tbr_tokens / tbr_s:.1f} tokens/s over {args.repeats} "
          f"runs ({int(last_run_stats['batches'])} batches each, {tbr_threads} threads, process CPU time "
          f"{runs[True]['cpu']:.1f} s)", flush=True)
    sdpa_tokens, sdpa_s = runs[False]["tokens"], runs[False]["seconds"]
    same_sdpa = sum(x == y for x, y in zip(tbr_out, outs[False]))
    print(f"tbr, model's sdpa: {sdpa_tokens} tokens in {sdpa_s:.1f} s = {sdpa_tokens / sdpa_s:.1f} tokens/s; "
          f"decode attention x{(tbr_tokens / tbr_s) / (sdpa_tokens / sdpa_s):.2f}; "
          f"identical outputs {same_sdpa}/{len(rows)}", flush=True)

    # --- naive: one prompt at a time through model.generate, greedy
    naive_out: list[str] = []
    naive_tokens = 0
    torch.set_num_threads(default_threads)
    t, c = time.perf_counter(), time.process_time()
    for conv in convs:
        enc = tok(render_chat(tok, conv), return_tensors="pt", add_special_tokens=False)
        gen = model.generate(**{k: v.to(device) for k, v in enc.items()}, max_new_tokens=args.max_new_tokens,
                             do_sample=False, temperature=None, top_p=None, top_k=None,
                             pad_token_id=pad, eos_token_id=sorted(eos) or None)
        new = gen[0, enc["input_ids"].shape[1]:].tolist()
        n = next((k + 1 for k, x in enumerate(new) if x in eos), len(new))
        naive_tokens += n
        naive_out.append(tok.decode(new[:n], skip_special_tokens=True).strip())
    naive_s, naive_cpu = time.perf_counter() - t, time.process_time() - c
    print(f"naive: {naive_tokens} tokens in {naive_s:.1f} s = {naive_tokens / naive_s:.1f} tokens/s "
          f"({default_threads} threads, process CPU time {naive_cpu:.1f} s)", flush=True)

    same = sum(a == b for a, b in zip(tbr_out, naive_out))
    print(f"identical outputs: {same}/{len(rows)} = {same / max(1, len(rows)):.3f}", flush=True)
    print(f"load average after: {_load_avg()}", flush=True)
    if tmp is not None:
        tmp.cleanup()
    ratio = (tbr_tokens / tbr_s) / (naive_tokens / naive_s) if naive_tokens and tbr_s > 0 else 0.0
    pdt = str(model.dtype).replace("torch.", "")
    peak = matmul_peak(tbr_threads, pdt)
    share = 2 * matmul_params(model) * (tbr_tokens / tbr_s) / peak
    print(f"tbr: 2N = {100 * share:.1f}% of a {peak / 1e9:.0f} GFLOP/s {pdt} matmul peak measured after it", flush=True)
    emit_summary("generation tokens/s", tbr_tokens / tbr_s, "tokens/s", "one prompt at a time (model.generate)",
                 naive_tokens / naive_s, tbr_threads, peak_share=share, flops="2N", peak_dtype=pdt,
                 identical_to_model_sdpa=f"{same_sdpa}/{len(rows)}")
    print(f"ratio: {ratio:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
