"""What machine produced a result: recorded in every stage manifest.

bf16 (and, less often, fp32) kernels round differently on different CPU families (AVX2, AVX-512,
AMX), so byte-identical reruns hold on one machine only. A figure that moved between two runs
of one config can be traced to a change of machine through these fields."""
from __future__ import annotations

import os
import platform
from functools import lru_cache
from typing import Any

# the instruction-set flags that decide which matmul kernels torch, MKL and oneDNN pick
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16",
             "amx_bf16", "amx_int8", "amx_tile", "asimd", "sve", "bf16")


@lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, tuple[str, ...]]:
    flags: tuple[str, ...]
    model, flags = platform.processor() or platform.machine(), ()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, val = line.partition(":")
                key = key.strip().lower()
                if key == "model name" and model in ("", platform.machine(), platform.processor()):
                    model = val.strip()
                elif key in ("flags", "features") and not flags:
                    flags = tuple(val.split())
    except OSError:
        pass
    return model, flags


def hardware() -> dict[str, Any]:
    """CPU model, the ISA flags that matter for kernels, torch threads, device and versions."""
    model, flags = _cpuinfo()
    out: dict[str, Any] = {"cpu": model, "machine": platform.machine(), "cores": os.cpu_count(),
                           "isa": [f for f in ISA_FLAGS if f in flags]}
    try:
        import torch  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
        out["torch"] = torch.__version__
        out["threads"] = torch.get_num_threads()
        out["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        if out["device"] == "cuda":
            out["gpu"] = torch.cuda.get_device_name(0)
        out["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        out["deterministic_algorithms"] = torch.are_deterministic_algorithms_enabled()
    except Exception:  # torch missing or broken: the CPU fields still say where this ran
        pass
    for var in ("MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS"):
        if os.environ.get(var):
            out.setdefault("env", {})[var] = os.environ[var]
    return out
