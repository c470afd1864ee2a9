"""Which words of a prompt drive a refusal: attribution as a statistic over a test set.

Two methods, both on word-level features of the *user prompt* (the chat-template scaffolding
is never perturbed):

* perturbation (the paper's): replace one word by a neutral word and measure how the
  log-probability of each token of a refusal target changes, conditioned on the chat-templated
  prompt. score[w, t] = logp(t | original) - mean_n logp(t | w -> n) over several neutral words.
  `perturbation_scores` batches all perturbed prompts (left padding, one forward per batch);
  `perturbation_scores_captum` computes the same with captum's LLMAttribution + FeatureAblation
  + TextTemplateInput (unbatched, the reference the tests compare against).
* integrated gradients over the input embeddings of the word tokens (zero-embedding baseline,
  scaffolding and target kept), attributing the summed target log-prob, summed per word, with
  the completeness gap |sum(attr) - (f(x) - f(baseline))| reported.

The statistic: a word's attribution to the whole target is the sum over target tokens (the
change in the target's total log-prob); the focus word's share is |A_focus| / sum_w |A_w|.
Over a suite: the mean share per model with a percentile-bootstrap interval, and the paired
difference between models on the same prompts with a paired bootstrap interval.
"""
from __future__ import annotations

import gc
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from tbr.config import to_dict
from tbr.errors import TbrError
from tbr.io import atomic_write_json, write_jsonl
from tbr.models import load_model
from tbr.report.attribute_plots import plot_heatmap, plot_summary
from tbr.runs import fingerprint
from tbr.stages.attribute_stats import attribution_stats, focus_share
from tbr.stages.attribute_words import Segmented, match_case, segment
from tbr.stages.context import Context
from tbr.stages.runner import run_stage

NAME = "attribute"
GREEDY = "greedy"  # AttributeConfig.target == "greedy": attribute the model's own greedy response
GREEDY_TOKENS = 16


def chat_text(tokenizer: Any, user: str) -> str:
    return tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                         add_generation_prompt=True)


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of already-templated text (the template carries its own special tokens)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def target_ids(tokenizer: Any, target: str) -> list[int]:
    ids = encode(tokenizer, target)
    if not ids:
        raise TbrError("attribute.target is empty after tokenization")
    return ids


def greedy_target(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int = GREEDY_TOKENS) -> list[int]:
    """The model's own greedy first response tokens (cut at end-of-turn; the eos alone if it stops at once)."""
    import torch  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
    ids = torch.tensor([encode(tokenizer, chat_text(tokenizer, prompt))], device=model.device)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, temperature=None, top_p=None, top_k=None,
                             pad_token_id=tokenizer.pad_token_id)
    gen = out[0, ids.shape[1]:].tolist()
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
    cut = next((i for i, t in enumerate(gen) if t in eos), len(gen))
    return gen[:cut] or gen[:1]


def token_strings(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    return [tokenizer.decode([i]) for i in ids]


# ------------------------------------------------------------------------------ perturbation
def target_logprobs(model: Any, prompts: Sequence[Sequence[int]], target: Sequence[int], *,
                    pad_id: int = 0, batch_size: int = 16) -> np.ndarray:
    """logp(target[t] | prompt_i, target[:t]) for every prompt: shape (len(prompts), len(target)).

    Left padding with explicit position ids, so each row sees exactly its unpadded positions;
    only the T+1 last logits are computed (logits_to_keep), which keeps memory at B*T*V."""
    import torch  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
    T = len(target)
    tgt = torch.tensor(list(target), device=model.device)
    out = np.zeros((len(prompts), T), dtype=np.float64)
    for s in range(0, len(prompts), batch_size):
        chunk = [list(p) + list(target) for p in prompts[s:s + batch_size]]
        L = max(len(c) for c in chunk)
        ids = torch.full((len(chunk), L), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), L), dtype=torch.long)
        for i, c in enumerate(chunk):
            ids[i, L - len(c):] = torch.tensor(c)
            mask[i, L - len(c):] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                           position_ids=pos.to(model.device), logits_to_keep=T + 1, use_cache=False).logits
        lp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        got = lp.gather(-1, tgt.expand(len(chunk), T).unsqueeze(-1)).squeeze(-1)
        out[s:s + len(chunk)] = got.double().cpu().numpy()
    return out


def perturbation_scores(model: Any, tokenizer: Any, seg: Segmented, target: Sequence[int],
                        neutral_words: Sequence[str], *, batch_size: int = 16) -> np.ndarray:
    """score[w, t] = logp(t | original) - mean over neutral words of logp(t | word w replaced).

    Identical token sequences (a word replaced by itself) are evaluated once, so they score exactly 0."""
    if not neutral_words:
        raise TbrError("attribute.neutral_words must not be empty")
    F, K = len(seg.spans), len(neutral_words)
    texts = [seg.prompt] + [seg.replaced(f, match_case(seg.words[f], n)) for n in neutral_words for f in range(F)]
    seqs = [tuple(encode(tokenizer, chat_text(tokenizer, t))) for t in texts]
    unique = list(dict.fromkeys(seqs))
    where = {s: i for i, s in enumerate(unique)}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    lp = target_logprobs(model, unique, target, pad_id=pad, batch_size=batch_size)
    lp = lp[[where[s] for s in seqs]]
    return lp[0][None, :] - lp[1:].reshape(K, F, len(target)).mean(axis=0)


def perturbation_scores_captum(model: Any, tokenizer: Any, seg: Segmented, target: Sequence[int],
                               neutral_words: Sequence[str], *, forward_in_tokens: bool = False) -> np.ndarray:
    """The same scores through captum (LLMAttribution + FeatureAblation + TextTemplateInput with the
    neutral word as baseline), one captum run per neutral word, averaged. Unbatched: the reference."""
    import torch  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
    from captum.attr import (  # captum: only for the captum reference scores
        FeatureAblation,
        LLMAttribution,
        TextTemplateInput,
    )

    class ChatTemplateInput(TextTemplateInput):
        """Features are the prompt's words; the model sees the chat-templated prompt's token ids."""
        def to_model_input(self, perturbed_tensor: Any = None) -> Any:
            text = super().to_model_input(perturbed_tensor)
            return torch.tensor([encode(tokenizer, text)])

    llm = LLMAttribution(FeatureAblation(model), tokenizer)
    total = np.zeros((len(seg.spans), len(target)))
    for n in neutral_words:
        inp = ChatTemplateInput(template=lambda *v: chat_text(tokenizer, seg.render(v)), values=seg.words,
                                baselines=[match_case(w, n) for w in seg.words])
        res = llm.attribute(inp, target=torch.tensor(list(target)), forward_in_tokens=forward_in_tokens,
                            use_cached_outputs=False)
        total += res.token_attr.detach().double().cpu().numpy().T
    return total / len(neutral_words)


# ------------------------------------------------------------------------- integrated gradients
def word_token_map(tokenizer: Any, seg: Segmented) -> tuple[list[int], list[int | None]]:
    """Ids of the chat-templated prompt and, per token, the feature it belongs to (None: scaffolding
    or punctuation). A token belongs to the first feature whose characters it overlaps."""
    text = chat_text(tokenizer, seg.prompt)
    start = text.find(seg.prompt)
    if start < 0:
        raise TbrError("the chat template changed the prompt text; cannot map tokens to words")
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    owner: list[int | None] = []
    for a, b in enc["offset_mapping"]:
        a, b = a - start, b - start
        owner.append(next((f for f, (s, e) in enumerate(seg.spans) if a < e and s < b), None))
    return list(enc["input_ids"]), owner


def _params_frozen(model: Any) -> list[Any]:
    ps = [p for p in model.parameters() if p.requires_grad]
    for p in ps:
        p.requires_grad_(False)
    return ps


def ig_word_attributions(model: Any, tokenizer: Any, seg: Segmented, target: Sequence[int], *,
                         steps: int = 32, internal_batch_size: int = 8, baseline: str = "zero",
                         method: str = "gausslegendre") -> dict[str, Any]:
    """Integrated gradients of sum_t logp(target_t) w.r.t. the input embeddings of the word tokens
    (baseline: zero embedding, or the pad token's with baseline="pad"; every other position equals
    its baseline so gets exactly 0), summed over each word's tokens and embedding dimensions."""
    import torch  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
    from captum.attr import IntegratedGradients  # captum: only for the captum reference scores

    ids, owner = word_token_map(tokenizer, seg)
    T = len(target)
    full = torch.tensor([ids + list(target)], device=model.device)
    tgt = torch.tensor(list(target), device=model.device)
    emb = model.get_input_embeddings()(full).detach()
    base = emb.clone()
    pos = [i for i, o in enumerate(owner) if o is not None]
    if baseline == "zero":
        base[0, pos] = 0
    elif baseline == "pad":
        base[0, pos] = model.get_input_embeddings().weight[tokenizer.pad_token_id].detach()
    else:
        raise TbrError(f"unknown integrated-gradients baseline {baseline!r} (expected zero or pad)")

    def f(embeds: Any) -> Any:
        logits = model(inputs_embeds=embeds, logits_to_keep=T + 1, use_cache=False).logits[:, :-1].float()
        return torch.log_softmax(logits, -1).gather(-1, tgt.expand(embeds.shape[0], T).unsqueeze(-1)).sum((1, 2))

    frozen = _params_frozen(model)
    try:
        attr = IntegratedGradients(f).attribute(emb, baselines=base, n_steps=steps, method=method,
                                                internal_batch_size=internal_batch_size)
        with torch.no_grad():
            fx, fb = f(emb).item(), f(base).item()
    finally:
        for p in frozen:
            p.requires_grad_(True)
    per_token = attr.double().sum(-1)[0].cpu().numpy()
    words = np.zeros(len(seg.spans))
    for i, o in enumerate(owner):
        if o is not None:
            words[o] += per_token[i]
    total = float(per_token.sum())
    gap = abs(total - (fx - fb))
    return {"word_attr": words, "f_x": fx, "f_baseline": fb, "sum_attr": total,
            "gap": gap, "rel_gap": gap / abs(fx - fb) if fx != fb else (0.0 if gap == 0 else math.inf)}


# ------------------------------------------------------------------------------- statistics
def select_prompts(prompts: Sequence[dict[str, Any]], limit: int) -> list[tuple[dict[str, Any], Segmented]]:
    """The first `limit` rows whose focus occurs in the prompt, rows labelled safe first (stable)."""
    ordered = sorted(prompts, key=lambda r: str(r.get("label", "")).lower() != "safe")
    out: list[tuple[dict[str, Any], Segmented]] = []
    seen: set[str] = set()
    for r in ordered:
        if len(out) >= limit:
            break
        prompt = str(r.get("prompt") or "").strip()
        seg = segment(prompt, str(r.get("focus") or ""))
        if seg.focus_index is None:
            continue
        if "id" not in r or str(r["id"]) in seen:
            raise TbrError(f"attribution prompts need unique ids: row {r.get('id', '<no id>')!r} "
                           f"(prompt {prompt[:40]!r})")
        seen.add(str(r["id"]))
        out.append((r, seg))
    return out


def _clean(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, np.ndarray):
        return _clean(v.tolist())
    return v


def attribute_prompt(model: Any, tokenizer: Any, row: dict[str, Any], seg: Segmented, label: str,
                     cfg: Any, *, batch_size: int = 16, with_ig: bool = True) -> dict[str, Any]:
    """One attributions.jsonl row: perturbation scores, IG word attributions and both focus shares."""
    if str(cfg.target).strip().lower() == GREEDY:
        tgt = greedy_target(model, tokenizer, seg.prompt)
    else:
        tgt = target_ids(tokenizer, cfg.target)
    scores = perturbation_scores(model, tokenizer, seg, tgt, cfg.neutral_words, batch_size=batch_size)
    seq = scores.sum(axis=1)
    fi = seg.focus_index
    assert fi is not None  # select_prompts keeps only prompts whose focus word was found
    out = {"id": str(row["id"]), "model": label, "prompt": seg.prompt, "focus": seg.words[fi],
           "label": row.get("label"), "words": seg.words, "target_ids": list(tgt),
           "target_tokens": token_strings(tokenizer, tgt), "scores": scores, "word_scores": seq,
           "focus_index": seg.focus_index, "focus_share": focus_share(seq, fi)}
    if with_ig and cfg.ig_steps and cfg.ig_steps > 0:
        ig = ig_word_attributions(model, tokenizer, seg, tgt, steps=cfg.ig_steps)
        out.update(ig_word_attr=ig["word_attr"], ig_focus_share=focus_share(ig["word_attr"], fi),
                   ig_completeness_gap=ig["gap"], ig_completeness_rel_gap=ig["rel_gap"],
                   ig_f_x=ig["f_x"], ig_f_baseline=ig["f_baseline"])
    else:
        out.update(ig_word_attr=None, ig_focus_share=None, ig_completeness_gap=None, ig_completeness_rel_gap=None)
    return {k: _clean(v) for k, v in out.items()}


def _release_memory() -> None:
    import torch  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_attribution(out_dir: Path, models: dict[str, str], prompts: list[dict], cfg: Any, *,
                    dtype: str = "auto", device: str = "auto", heatmaps: int = 2) -> dict:
    """Attribute the first cfg.limit focus-bearing prompts for each model (loaded one at a time);
    write attributions.jsonl, attribution_stats.json, heatmap_<id>.png and attribution_summary.png.

    dtype "auto" means float32 here: the scores are small log-prob differences and IG needs
    accurate gradients (in bfloat16 the IG completeness gap was ~40% on SmolLM2-135M)."""

    out_dir = Path(out_dir)
    if not models:
        raise TbrError("attribution needs at least one model")
    chosen = select_prompts(prompts, cfg.limit)
    if not chosen:
        raise TbrError("no prompt has a focus word that occurs in its text (fields prompt, focus)")
    labels = list(models)
    dtype = "float32" if dtype == "auto" else dtype
    rows: list[dict[str, Any]] = []
    with tqdm(total=len(labels) * len(chosen), desc="attribute", unit="prompt") as bar:
        for label in labels:
            bar.set_postfix_str(label)
            model, tok = load_model(models[label], dtype=dtype, device=device)
            try:
                for i, (row, seg) in enumerate(chosen):
                    # IG costs ~ig_steps forwards+backwards per prompt: run it on the first
                    # ig_limit prompts (the heatmap ones); perturbation covers the whole suite
                    with_ig = i < getattr(cfg, "ig_limit", len(chosen))
                    rows.append(attribute_prompt(model, tok, row, seg, label, cfg, with_ig=with_ig))
                    bar.update(1)
            finally:
                del model, tok
                _release_memory()
    order = {lab: i for i, lab in enumerate(labels)}
    pidx = {str(r["id"]): i for i, (r, _) in enumerate(chosen)}
    rows.sort(key=lambda r: (pidx[r["id"]], order[r["model"]]))
    write_jsonl(out_dir / "attributions.jsonl", rows)
    stats = attribution_stats(rows, labels)
    stats["config"] = {"models": dict(models), "target": cfg.target, "neutral_words": list(cfg.neutral_words),
                       "ig_steps": cfg.ig_steps, "ig_limit": getattr(cfg, "ig_limit", None), "limit": cfg.limit, "ig_baseline": "zero", "dtype": dtype,
                       "share": "|sum_t score[focus,t]| / sum_w |sum_t score[w,t]|"}
    atomic_write_json(out_dir / "attribution_stats.json", stats)
    for row, _ in chosen[:max(heatmaps, 0)]:
        rid = str(row["id"])
        panels = [r for r in rows if r["id"] == rid]
        plot_heatmap(out_dir / f"heatmap_{_safe_name(rid)}.png", rid, panels)
    plot_summary(out_dir / "attribution_summary.png", stats)
    return stats


def _safe_name(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s)[:80] or "prompt"


def run(ctx: Context) -> None:
    """Optional (attribute.enabled, or `tbr attribute`): which prompt words drive each model's
    refusal, for every evaluated model."""
    ac = ctx.cfg.attribute
    if not (ac.enabled or ctx.until == NAME):
        return
    subjects = ctx.subjects()
    afp = fingerprint("attribute", to_dict(ac), [s.fp for s in subjects], ctx.data_fp)

    def do_attr(out: Path) -> dict[str, Any]:
        stats = run_attribution(out, {s.label: s.path for s in subjects}, ctx.eval_rows, ac, heatmaps=ac.heatmaps,
                                **ctx.dev)
        return {"models": len(subjects), "prompts": stats.get("n_prompts", 0) if isinstance(stats, dict) else 0}
    run_stage(ctx.root / NAME, stage=NAME, label="attribute", fp=afp, config=to_dict(ac),
              inputs={"models": fingerprint(*[s.fp for s in subjects])}, fn=do_attr)
