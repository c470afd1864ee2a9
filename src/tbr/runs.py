"""Run directories: one folder per stage (and per grid cell), manifests written last, a lock.

A stage is *finished* when its `manifest.json` exists and its fingerprint (a hash of the
stage's config section and of its inputs' fingerprints) equals the one we would compute now.
A finished stage is skipped on rerun; anything else is (re)done.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from tbr.errors import TbrError
from tbr.hardware import hardware
from tbr.io import atomic_write_json, file_sha256

MANIFEST = "manifest.json"
_PACKAGES = ("tbr", "torch", "transformers", "trl", "peft", "accelerate", "datasets")


def fingerprint(*parts: Any) -> str:
    """Stable hash of JSON-serialisable parts (dict keys sorted)."""
    blob = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def package_versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    out["python"] = platform.python_version()
    return out


def read_manifest(stage_dir: Path) -> dict[str, Any] | None:
    p = Path(stage_dir) / MANIFEST
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def is_done(stage_dir: Path, fp: str) -> bool:
    m = read_manifest(stage_dir)
    return bool(m) and m is not None and m.get("fingerprint") == fp


def _hardware() -> dict[str, Any]:
    return hardware()


def write_manifest(stage_dir: Path, *, stage: str, fp: str, config: Any, inputs: Mapping[str, str],
                   counts: Mapping[str, Any], seconds: float, outputs: list[str] | None = None,
                   extra: Mapping[str, Any] | None = None) -> Path:
    """Written last: its presence with a matching fingerprint means the stage is complete."""
    stage_dir = Path(stage_dir)
    hashes = {}
    for name in outputs or []:
        p = stage_dir / name
        if p.is_file():
            hashes[name] = file_sha256(p)
    m = {
        "stage": stage,
        "fingerprint": fp,
        "config": config,
        "inputs": dict(inputs),
        "outputs": hashes,
        "counts": dict(counts),
        "seconds": round(seconds, 2),
        "versions": package_versions(),
        "hardware": _hardware(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if extra:
        m.update(extra)
    return atomic_write_json(stage_dir / MANIFEST, m)


@contextmanager
def run_lock(root: Path) -> Iterator[None]:
    """Exclusive lock on a run directory. The kernel drops it when the holder dies,
    so a crashed run never blocks the next one."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise TbrError(f"cannot use run directory: {e.strerror}", path=root) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise TbrError(f"run directory is in use by a live tbr process (pid {holder}); "
                           "wait for it or choose another run name", path=root) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start
