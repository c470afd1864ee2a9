"""Running one stage under the contract: skip when finished, wipe when stale, manifest last."""
from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tbr.io import atomic_write_json, atomic_write_text
from tbr.runs import MANIFEST, Timer, is_done, read_manifest, write_manifest

FP_FILE = ".fingerprint"


def log(msg: str) -> None:
    print(f"tbr: {msg}", file=sys.stderr, flush=True)


class OwnershipError(RuntimeError):
    """Two subjects of one run were about to share a stage folder: a bug, never a user error
    (labels are checked for uniqueness before any work starts)."""


_claims: dict[Path, str] | None = None


@contextmanager
def ownership() -> Iterator[dict[Path, str]]:
    """Within one pipeline run, each stage folder belongs to one subject (a model label, or
    the run itself for shared stages). A second subject claiming it raises OwnershipError
    before anything is written, so no model's outputs can overwrite another's."""
    global _claims
    saved, _claims = _claims, {}
    try:
        yield _claims
    finally:
        _claims = saved


def claim(stage_dir: Path, owner: str) -> None:
    if _claims is None:
        return
    key = Path(stage_dir).resolve()
    held = _claims.setdefault(key, owner)
    if held != owner:
        raise OwnershipError(f"{stage_dir}: stage folder of {held!r} would be written by {owner!r}")


_donors: tuple[Path, tuple[Path, ...]] | None = None


@contextmanager
def reuse_from(root: Path, donors: Sequence[Path]) -> Iterator[None]:
    """While a run at `root` runs, a stage that one of the `donors` (other run folders: the other
    experiments of a study) finished at the same place with the same fingerprint is copied from
    there instead of redone. A fingerprint hashes the stage's config and every input's
    fingerprint, so an equal one means the same work on the same inputs."""
    global _donors
    saved, _donors = _donors, (Path(root), tuple(Path(d) for d in donors))
    try:
        yield
    finally:
        _donors = saved


def _link_or_copy(src: str, dst: str) -> None:
    # a hard link costs no disk; safe because finished stages are never written in place
    # (every write is an atomic replace, which gives the file a new inode)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _copy_from_donor(stage_dir: Path, fp: str, owner: str) -> tuple[Path, dict[str, Any]] | None:
    if _donors is None:
        return None
    root, donors = _donors
    try:
        rel = stage_dir.resolve().relative_to(root.resolve())
    except ValueError:
        return None
    for donor in donors:
        src = donor / rel
        if donor.resolve() == root.resolve() or not is_done(src, fp):
            continue
        tmp = stage_dir.parent / f".{stage_dir.name}.reuse.tmp"  # a kill mid-copy leaves only this
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, tmp, copy_function=_link_or_copy)
        if stage_dir.exists():
            shutil.rmtree(stage_dir)
        tmp.rename(stage_dir)
        m = (read_manifest(stage_dir) or {}) | {"subject": owner, "copied_from": str(src)}
        atomic_write_json(stage_dir / MANIFEST, m)
        return src, m
    return None


def run_stage(stage_dir: Path, *, stage: str, label: str, fp: str, config: Any, inputs: Mapping[str, str],
              fn: Callable[[Path], Mapping[str, Any]], outputs: list[str] | None = None,
              announce: bool = True, owner: str = "run") -> dict[str, Any]:
    """Run `fn(stage_dir) -> counts` unless the stage already finished with this fingerprint.

    A folder left by an earlier attempt with the same fingerprint is kept, so long stages can
    resume from their partial files; one left with another fingerprint (the config or an
    input changed) is wiped first, so no stale row can leak into new results."""
    stage_dir = Path(stage_dir)
    claim(stage_dir, owner)
    if is_done(stage_dir, fp):
        log(f"{label}: finished earlier, skipped")
        return read_manifest(stage_dir) or {}
    copied = _copy_from_donor(stage_dir, fp, owner)
    if copied is not None:
        log(f"{label}: finished in {copied[0]}, copied")
        return copied[1]
    fp_file = stage_dir / FP_FILE
    if stage_dir.exists():
        old = fp_file.read_bytes().decode("utf-8", "replace").strip() if fp_file.is_file() else None
        if old != fp:
            shutil.rmtree(stage_dir)
        else:  # kept to resume from; what a kill left half-written (io's atomic temps) is not resume state
            for tmp in sorted(stage_dir.rglob(".*.tmp"), reverse=True):
                if tmp.is_dir():
                    shutil.rmtree(tmp, ignore_errors=True)
                else:
                    tmp.unlink(missing_ok=True)
    stage_dir.mkdir(parents=True, exist_ok=True)
    (stage_dir / "manifest.json").unlink(missing_ok=True)
    atomic_write_text(fp_file, fp)
    if announce:  # quick stages that mostly validate input stay quiet, so a bad input gives one line
        log(f"{label}: running")
    t = Timer()
    try:
        counts = dict(fn(stage_dir))
    except Exception:
        _drop_if_nothing_to_resume(stage_dir)
        raise
    write_manifest(stage_dir, stage=stage, fp=fp, config=config, inputs=inputs, counts=counts,
                   seconds=t.seconds, outputs=outputs, extra={"subject": owner})
    log(f"{label}: done in {t.seconds:.0f} s")
    return read_manifest(stage_dir) or {}


def _drop_if_nothing_to_resume(stage_dir: Path) -> None:
    """After a failed stage, keep its folder only if it holds work a rerun resumes from
    (`*.partial` rows, training checkpoints, a finished SFT phase); otherwise remove it, so a failure leaves no
    half-made stage behind. (A kill skips this: it keeps what it wrote, and the rerun
    resumes or wipes by fingerprint.)"""
    keep = (any(stage_dir.rglob("*.partial")) or any(stage_dir.rglob("checkpoints/checkpoint-*"))
            or any(stage_dir.glob("*/train_summary.json")))  # a finished phase (SFT before DPO)
    if not keep:
        shutil.rmtree(stage_dir, ignore_errors=True)
        try:
            stage_dir.parent.rmdir()  # e.g. reflect/ when its first cell failed; kept if not empty
        except OSError:
            pass
