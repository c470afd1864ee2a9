"""Training checkpoints: which one a resume may start from, whether it is whole, and the loss
log cut back to it. A kill can tear a checkpoint while the Trainer writes it, so a checkpoint
counts only once tbr's marker is in it (written after the Trainer's save returns)."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

from tbr.errors import TbrError
from tbr.io import atomic_write_text

COMPLETE = "tbr_complete.json"  # marker written into a checkpoint once it is fully saved


def ckpt_step(p: Path | None) -> int:
    return int(p.name.split("-")[1]) if p else 0


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest complete checkpoint (one with our marker). A folder without it is one a kill
    tore while it was written: it is ignored (the Trainer overwrites it when it gets there)."""
    if not ckpt_dir.exists():
        return None
    good = []
    for p in ckpt_dir.glob("checkpoint-*"):
        try:
            step = int(p.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if (p / COMPLETE).exists():
            good.append((step, p))
    return max(good)[1] if good else None


def check_checkpoint(p: Path) -> None:
    """A complete checkpoint must be readable; say which file is not, instead of a traceback
    from deep inside the Trainer."""

    def bad(name: str, why: str) -> TbrError:
        return TbrError(f"checkpoint {p} is corrupt ({name}: {why}); delete {p} to resume from an "
                        f"earlier checkpoint, or {p.parent} to start over")
    try:
        state = json.loads((p / "trainer_state.json").read_text(encoding="utf-8"))
        if not isinstance(state, dict) or "global_step" not in state:
            raise ValueError("no global_step")
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise bad("trainer_state.json", str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    weights = [f for f in ("adapter_model.safetensors", "model.safetensors", "model.safetensors.index.json")
               if (p / f).exists()]
    if not weights and not any(q.is_dir() for q in p.iterdir()):  # FSDP / DeepSpeed keep shards in folders
        raise bad("weights", "no adapter_model.safetensors or model.safetensors")
    for f in p.glob("*.safetensors"):
        try:
            from safetensors import safe_open  # safetensors: only when a model file is read
            with safe_open(str(f), framework="pt") as h:
                list(h.keys())
        except Exception as e:  # safetensors raises its own error types
            raise bad(f.name, str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    for f in [*p.glob("*.pt"), *p.glob("*.pth")]:
        try:
            with zipfile.ZipFile(f) as z:
                if z.testzip() is not None:
                    raise zipfile.BadZipFile("CRC mismatch")
        except (OSError, zipfile.BadZipFile) as e:
            raise bad(f.name, str(e) or type(e).__name__) from None


def truncate_log(log_file: Path, step: int) -> None:
    """Keep log rows up to the checkpoint we resume from, so the curve has no duplicate steps."""
    keep = []
    for line in log_file.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            break  # a row torn by the kill
        if row.get("step", 0) <= step:
            keep.append(line)
    atomic_write_text(log_file, "".join(k + "\n" for k in keep))  # a kill here keeps the old log whole
