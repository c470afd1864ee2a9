"""What the benchmark scripts share: the matmul peak measured on the spot in the run's dtype, the matmul
weight count behind the FLOP estimates, the CPU's name, and the one `summary: {json}` line each
script prints for `benchmarks/summary.py` (before its `ratio: X` last line)."""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any


def matmul_peak(threads: int, dtype: Any = "bfloat16", n: int = 2048, reps: int = 5) -> float:
    """Best-of matmul rate in FLOP/s, in the dtype the measured run computes in: a CPU without
    bf16 units (AVX2 only) emulates bf16 matmuls about 300x slower than fp32 (one 2048^3 bf16
    matmul took 60 s on a 2-core Zen 3), so a bf16 peak there is neither a fair yardstick for an
    fp32 run nor quick to measure."""
    import torch
    dt = getattr(torch, dtype.replace("torch.", "")) if isinstance(dtype, str) else dtype
    torch.set_num_threads(threads)
    a = torch.randn(n, n, dtype=dt)
    b = torch.randn(n, n, dtype=dt)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def matmul_params(model: Any) -> int:
    """Weights of the model's Linear layers (a tied head once, LoRA adapters left out)."""
    import torch
    n = 0
    seen = set()
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) and "lora_" not in name and id(m.weight) not in seen:
            seen.add(id(m.weight))
            n += m.weight.numel()
    return n


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def emit_summary(figure: str, value: float, unit: str, baseline: str, baseline_value: float, threads: int,
                 peak_share: float | None = None, **extra: Any) -> None:
    """Print the script's `summary:` line: its figure, the baseline it ran beside, the ratio, the
    share of the measured peak where a FLOP count means something, CPU model and threads."""
    ratio = value / baseline_value if baseline_value else 0.0
    print("summary: " + json.dumps({
        "figure": figure, "value": round(value, 3), "unit": unit, "baseline": baseline,
        "baseline_value": round(baseline_value, 3), "ratio": round(ratio, 3),
        "peak_share": None if peak_share is None else round(peak_share, 4),
        "cpu": cpu_model(), "threads": threads, **extra}), flush=True)
