"""Pictures for the attribution stage (matplotlib Agg, no pyplot state): a heatmap per prompt with
the models side by side on one shared diverging colour scale centred at 0, and a summary of the
focus-word share per model with bootstrap interval error bars. PNGs are written atomically."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from textwrap import shorten
from typing import Any

import numpy as np

from tbr.io import atomic_path

CMAP = "RdBu_r"  # red: the word raises the target's log-prob (pushes towards refusal), blue: lowers it


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # matplotlib: slow to import, only when a plot is drawn
    from matplotlib.figure import Figure  # matplotlib: slow to import, only when a plot is drawn
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Any, path: Path | str, dpi: int = 120) -> Path:
    """Save to a temporary name in the same folder, then rename into place."""
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def _tok_label(t: str) -> str:
    return shorten(repr(t)[1:-1], width=14, placeholder="…")


def plot_heatmap(path: Path | str, prompt_id: str, panels: Sequence[dict[str, Any]]) -> Path:
    """Input words (rows) x target tokens (columns), one panel per model, one shared colour scale.
    `panels` are attributions.jsonl rows of one prompt (fields model, words, target_tokens, scores,
    focus_index, focus_share)."""
    from matplotlib.colors import TwoSlopeNorm  # matplotlib: slow to import, only when a plot is drawn

    mats = [np.asarray(p["scores"], dtype=float) for p in panels]
    vmax = max((float(np.nanmax(np.abs(m))) for m in mats if m.size), default=0.0) or 1.0
    norm = TwoSlopeNorm(vmin=-vmax, vcenter=0.0, vmax=vmax)
    n_rows = max(m.shape[0] for m in mats)
    n_cols = max(m.shape[1] for m in mats)
    fig = _figure(width=1.6 + len(panels) * (1.2 + 0.42 * n_cols), height=2.2 + 0.32 * n_rows)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    im = None
    for ax, p, m in zip(axes, panels, mats):
        im = ax.imshow(m, cmap=CMAP, norm=norm, aspect="auto", interpolation="nearest")
        words = list(p["words"])
        fi = p.get("focus_index")
        labels = [f"▶ {w}" if i == fi else w for i, w in enumerate(words)]
        ax.set_yticks(range(len(words)), labels=labels, fontsize=8)
        if fi is not None:
            ax.get_yticklabels()[fi].set_fontweight("bold")
        ax.set_xticks(range(m.shape[1]), labels=[_tok_label(t) for t in p["target_tokens"]], fontsize=7,
                      rotation=60, ha="right", rotation_mode="anchor")
        share = p.get("focus_share")
        ax.set_title(f"{p['model']}\nfocus share {share:.2f}" if share is not None else str(p["model"]), fontsize=9)
        ax.set_xlabel("target token", fontsize=8)
    axes[0].set_ylabel("input word (replaced by neutral words)", fontsize=8)
    prompt = shorten(str(panels[0].get("prompt", "")), width=110, placeholder="…")
    fig.suptitle(f"Perturbation attribution, prompt {prompt_id}: {prompt}", fontsize=10)
    cbar = fig.colorbar(im, ax=list(axes), shrink=0.85)
    cbar.set_label("logp(t | original) − mean logp(t | word replaced)", fontsize=8)
    return save_png(fig, path)


def plot_summary(path: Path | str, stats: dict[str, Any]) -> Path:
    """Mean focus-word share per model (perturbation and integrated gradients) with 95% CI bars."""
    labels = list(stats["models"])
    series = [("focus_share", "perturbation", "tab:red"), ("ig_focus_share", "integrated gradients", "tab:blue")]
    fig = _figure(width=1.8 + 1.3 * len(labels), height=3.8)
    ax = fig.subplots()
    x = np.arange(len(labels))
    for k, (metric, name, colour) in enumerate(series):
        pts = [stats["models"][lab].get(metric) or {} for lab in labels]
        have = [i for i, s in enumerate(pts) if s.get("mean") is not None]
        if not have:
            continue
        xs = x[have] + (k - 0.5) * 0.18
        mean = np.array([pts[i]["mean"] for i in have])
        err = np.array([[pts[i]["mean"] - pts[i]["lo"] for i in have], [pts[i]["hi"] - pts[i]["mean"] for i in have]])
        ax.errorbar(xs, mean, yerr=np.clip(err, 0, None), fmt="o", capsize=4, color=colour, label=name)
    ax.set_xticks(x, labels=labels)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_ylim(0, 1)
    ax.set_ylabel("focus word's share of |attribution|")
    ax.legend(fontsize=8, loc="upper right")
    level = stats.get("bootstrap", {}).get("level", 0.95)
    ax.set_title(f"Focus-word share of attribution to the refusal target\n"
                 f"mean over {stats.get('n_prompts', '?')} prompts, {level:.0%} bootstrap CI", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return save_png(fig, path)
