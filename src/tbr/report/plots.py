"""Matplotlib figures (Agg, no display), each written atomically."""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tbr.io import atomic_path


def _plt() -> Any:
    import matplotlib  # matplotlib: slow to import, only when a plot is drawn
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # matplotlib: slow to import, only when a plot is drawn
    return plt


def save_fig(fig: Any, path: Path) -> Path:
    path = Path(path)
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
    finally:
        _plt().close(fig)
    return path


def loss_curve(log_file: Path, out: Path) -> Path | None:
    if not Path(log_file).exists():
        return None
    rows = [json.loads(x) for x in Path(log_file).read_text().splitlines() if x.strip()]
    pts = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    if not pts:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1.5)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    return save_fig(fig, out)


def compliance_bars(models: Sequence[str], safe: Sequence[tuple[float | None, Sequence[float]]],
                    unsafe: Sequence[tuple[float | None, Sequence[float]]], out: Path, title: str = "") -> Path:
    """Grouped bars of compliance on safe (higher is better) and unsafe (lower is better) prompts."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(models), 3.4))
    w = 0.38
    for j, (series, name, colour) in enumerate(((safe, "safe prompts (higher is better)", "#4c9a2a"),
                                                (unsafe, "unsafe prompts (lower is better)", "#c0392b"))):
        xs = [i + (j - 0.5) * w for i in range(len(models))]
        vals = [v if v is not None else 0.0 for v, _ in series]
        err = [[max(0.0, v - ci[0]) for (v, ci) in zip(vals, [c for _, c in series])],
               [max(0.0, ci[1] - v) for (v, ci) in zip(vals, [c for _, c in series])]]
        ax.bar(xs, vals, w, yerr=err, capsize=3, label=name, color=colour, alpha=0.85)
    ax.set_xticks(range(len(models)), models, rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("compliance rate (95% CI)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if title:
        ax.set_title(title)
    return save_fig(fig, out)


def type_heatmap(models: Sequence[str], types: Sequence[str], values: Mapping[tuple[str, str], float | None],
                 out: Path, title: str = "", cmap: str = "RdYlGn") -> Path:
    """Rows are `types` (or attacks), columns models; `cmap` RdYlGn_r where a high rate is bad."""
    plt = _plt()
    import numpy as np  # numpy: only when a plot is drawn
    m = np.array([[np.nan if values.get((t, mo)) is None else values[(t, mo)] for mo in models] for t in types])
    fig, ax = plt.subplots(figsize=(1.8 + 1.1 * len(models), 0.9 + 0.35 * len(types)))
    im = ax.imshow(m, vmin=0, vmax=1, cmap=cmap, aspect="auto")
    ax.set_xticks(range(len(models)), models, rotation=20, ha="right")
    ax.set_yticks(range(len(types)), types)
    for i in range(len(types)):
        for j in range(len(models)):
            if not np.isnan(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, label="compliance rate")
    if title:
        ax.set_title(title)
    return save_fig(fig, out)


def gamma_curve(series: Mapping[str, Sequence[tuple[float, float | None, Sequence[float]]]], out: Path,
                title: str = "compliance vs γ") -> Path:
    """series: name -> [(γ, rate, [lo, hi])...]"""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for name, pts in series.items():
        pts = sorted((g, r, ci) for g, r, ci in pts if r is not None)
        if not pts:
            continue
        g = [p[0] for p in pts]
        r = [p[1] for p in pts]
        ax.plot(g, r, marker="o", label=name)
        ax.fill_between(g, [p[2][0] for p in pts], [p[2][1] for p in pts], alpha=0.15)
    ax.set_xlabel("safety reflection ratio γ")
    ax.set_ylabel("compliance rate (95% CI)")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return save_fig(fig, out)


def loss_curves(curves: Mapping[str, Sequence[tuple[float, float]]], out: Path,
                title: str = "training loss") -> Path | None:
    """Every training run's loss against step in one figure: name -> [(step, loss)...]."""
    curves = {k: v for k, v in curves.items() if v}
    if not curves:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, pts in curves.items():
        pts = sorted(pts)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1.4, marker="." if len(pts) < 30 else None,
                label=name)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title)
    return save_fig(fig, out)
