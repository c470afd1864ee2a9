"""Several processes training one model (`accelerate launch`, torchrun: DDP, FSDP, DeepSpeed,
or CPU processes over gloo): the rank and world size, one process group, and the collectives
the train stage needs. Rank 0 *leads* while it runs the pipeline (tbr.pipeline.run_launched):
each train call it makes is broadcast, and the other ranks, which wait in `follow`, join it.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any


def world() -> tuple[int, int]:
    """(rank, world size) from the launcher's environment (torchrun / accelerate launch)."""
    return int(os.environ.get("RANK", "0")), max(1, int(os.environ.get("WORLD_SIZE", "1")))


_OBJ_GROUP: Any = None
_LEADING = False  # rank 0 inside `lead()`: each train() call is broadcast to the other ranks


def init() -> Any:
    """Start the process group once (gloo on CPU, nccl on GPU), with a long timeout: the other
    ranks may wait while rank 0 runs the stages before training. Returns a gloo group for
    Python objects (usable under nccl too)."""
    global _OBJ_GROUP
    rank, ws = world()
    if ws == 1:
        return None
    import torch  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
    import torch.distributed as dist  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend, timeout=timedelta(hours=12))
    if _OBJ_GROUP is None:
        _OBJ_GROUP = dist.new_group(backend="gloo", timeout=timedelta(hours=12)) \
            if dist.get_backend() != "gloo" else dist.group.WORLD
    return _OBJ_GROUP


def bcast(obj: Any) -> Any:
    import torch.distributed as dist  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
    box = [obj]
    dist.broadcast_object_list(box, src=0, group=init())
    return box[0]


def gather(obj: Any) -> list[Any]:
    rank, ws = world()
    if ws == 1:
        return [obj]
    import torch.distributed as dist  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
    out: list[Any] = [None] * ws
    dist.all_gather_object(out, obj, group=init())
    return out


def barrier() -> None:
    if world()[1] > 1:
        import torch.distributed as dist  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
        dist.barrier(group=init())


def leading() -> bool:
    return _LEADING


@contextmanager
def lead() -> Iterator[None]:
    """Rank 0, while it runs the pipeline: its train calls are broadcast (see `follow`); on
    the way out (also after a failure) the other ranks are released."""
    global _LEADING
    _LEADING = True
    try:
        yield
    finally:
        _LEADING = False
        bcast(None)


def follow(train_fn: Callable[..., Any]) -> None:
    """The other ranks: run each train call rank 0 broadcasts, until it releases them."""
    while True:
        job = bcast(None)
        if job is None:
            return
        train_fn(**job)
