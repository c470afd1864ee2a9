"""The paper's training recipe projected from what was measured here: arithmetic only, no run.

    .venv/bin/python benchmarks/scale_on_paper.py [--tokens-per-row 117] [--share 0.30]

Inputs, each marked measured or assumed in the output:
- tokens per training row: measured on the built-in rows with the embedded tokenizer, capped at
  the recipe's 256 (117.3 on 840 rows; Alpaca's rows under a Llama tokenizer will differ);
- the share of the bf16 matmul peak training reaches: measured by train_throughput.py here
  (30% of a 2-core CPU's measured peak, 6N); a GPU's own share must be measured on it;
- GPU peak: the vendor's dense bf16 figure (H200 SXM 989 TFLOP/s), assumed, not measured.
FLOP per trained token: 6N for full fine-tuning, 4N with LoRA (frozen weights need no weight
gradients; the adapters are a rounding error at r=8). The recipe: 2,000 rows, 3 epochs.
"""
from __future__ import annotations

import argparse

H200_BF16_DENSE = 989e12  # FLOP/s, vendor figure
H200_MEMORY = 141e9  # bytes, vendor figure


def state_bytes_per_gpu(params: float, lora: bool, gpus: int) -> float:
    """Weights, gradients and optimizer states per GPU, activations left out: bf16 weights only
    with LoRA (2 bytes a weight); mixed-precision Adam for full fine-tuning (16 bytes: bf16
    weights and gradients, fp32 master weights and two moments), sharded over the GPUs as ZeRO-3
    does (one GPU: no sharding)."""
    return params * (2 if lora else 16) / gpus


def train_seconds(params: float, rows: int, epochs: int, tokens_per_row: float, lora: bool,
                  gpus: int, peak: float, share: float) -> float:
    """Wall seconds of one training cell: FLOP per token x tokens over the sustained rate."""
    flop = (4 if lora else 6) * params * rows * epochs * tokens_per_row
    return flop / (gpus * peak * share)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens-per-row", type=float, default=117.3, help="measured here (see docstring)")
    ap.add_argument("--share", type=float, default=0.30, help="share of peak sustained (measured here: 0.30)")
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=3)
    a = ap.parse_args(argv)
    cases = [("Llama-3.1-8B, LoRA, 1 GPU", 8.0e9, True, 1, "configs/paper.yaml (one GPU: grad_accum 8)"),
             ("Llama-3.1-8B, full fine-tuning, 1 GPU", 8.0e9, False, 1, "configs/paper.yaml --set lora.enabled=false"),
             ("Llama-3.1-70B, LoRA, 8 GPUs, ZeRO-3", 70.6e9, True, 8, "configs/accelerate/deepspeed_zero3.yaml"),
             ("Llama-3.1-70B, full, 8 GPUs, ZeRO-3", 70.6e9, False, 8, "configs/accelerate/deepspeed_zero3.yaml")]
    tokens = a.rows * a.epochs * a.tokens_per_row
    print(f"recipe: {a.rows} rows x {a.epochs} epochs x {a.tokens_per_row:g} tokens/row = {tokens:,.0f} trained "
          f"tokens per cell; sustained share of peak {a.share:.0%}; H200 dense bf16 peak {H200_BF16_DENSE / 1e12:.0f} "
          f"TFLOP/s (vendor figure)")
    print("| case | params | FLOP/token | projected wall per cell | states per GPU (of 141 GB) | launch |")
    print("|---|---|---|---|---|---|")
    for name, n, lora, gpus, launch in cases:
        s = train_seconds(n, a.rows, a.epochs, a.tokens_per_row, lora, gpus, H200_BF16_DENSE, a.share)
        mem = state_bytes_per_gpu(n, lora, gpus)
        fits = "fits" if mem < H200_MEMORY else "does not fit: needs CPU offload"
        print(f"| {name} | {n / 1e9:.1f}B | {'4N' if lora else '6N'} | {s / 60:.1f} min (projected) | "
              f"{mem / 1e9:.0f} GB, {fits} | {launch} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
