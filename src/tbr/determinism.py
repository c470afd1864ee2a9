"""`--deterministic`: the same bits on any x86-64 CPU family, at a cost in speed.

What differs between machines is which kernels run: ATen's vectorised loops dispatch on the
CPU's capability (DEFAULT, AVX2, AVX-512), MKL's GEMM picks a code path per ISA (and per
vendor), oneDNN (bf16 matmuls) likewise, and bf16 itself exists only on some CPUs. Pinned:

- ATen to its DEFAULT capability (ATEN_CPU_CAPABILITY=default);
- MKL to conditional numerical reproducibility, COMPATIBLE branch (MKL_CBWR=COMPATIBLE): the
  same code path on Intel and AMD, with or without AVX-512;
- oneDNN to SSE4.1 (ONEDNN_MAX_CPU_ISA=SSE41);
- one thread (a reduction split over threads rounds in another order);
- fp32 (no bf16, whose kernels and availability differ by CPU);
- torch.use_deterministic_algorithms(True).

Guaranteed: byte-identical outputs, hence metrics, across x86-64 machines with the same torch
build, tbr version and config. Not guaranteed: across architectures (x86 vs Arm: MKL does not
exist on Arm), across torch versions, or on CUDA (cuBLAS has no such mode for every op).
The environment must be set before MKL and ATen first run a kernel; the CLI does it first."""
from __future__ import annotations

import os
from typing import Any

PINNED_ENV = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "SSE41",
              "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def pin_kernels() -> None:
    """Force the kernel-selecting environment, whatever the machine or the user set."""
    os.environ.update(PINNED_ENV)


def apply(cfg: Any) -> None:
    """The in-process half, once torch is imported: threads, algorithms, and fp32 for the run."""
    pin_kernels()
    import torch  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    cfg.model.dtype = "float32"
