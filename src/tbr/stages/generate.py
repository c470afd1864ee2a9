"""The generate stage: every evaluated model's responses to every prompt, under every mode.

Backends:
- hf: batched `model.generate` through tbr.generation (length-sorted batches, left padding,
  the KV cache, bf16 where the hardware has it, stop strings).
- vllm: when installed and a GPU is present (the `gpu` extra).
- openai: any OpenAI-compatible endpoint, so an API model can be the subject of an evaluation.

The stage appends rows as it goes and resumes by (id, mode) after a kill.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tbr.config import to_dict
from tbr.errors import TbrError
from tbr.generation import DEFAULT_BATCH_SIZE, hf_generate_texts, render_chat, vllm_available, vllm_generate
from tbr.io import RowAppender
from tbr.labels import folder_name
from tbr.models import load_model, load_tokenizer, resolve
from tbr.prompts import mode_messages, split_reflection
from tbr.remote import ChatClient
from tbr.runs import fingerprint
from tbr.stages.context import Context
from tbr.stages.runner import run_stage

NAME = "generate"


def response_row(prompt_row: dict[str, Any], mode: str, text: str, model_label: str,
                 truncated: bool | None = None) -> dict[str, Any]:
    """One response; `truncated` (hf only: None where the backend cannot tell) says whether it
    ran into its length budget rather than ending by itself."""
    reflection, answer = split_reflection(text)
    row = {"id": prompt_row["id"], "suite": prompt_row["suite"], "prompt": prompt_row["prompt"],
           "mode": mode, "response": text, "reflection": reflection, "answer": answer, "model": model_label}
    if prompt_row.get("attack") is not None:
        row["attack"] = prompt_row["attack"]
    if truncated is not None:
        row["truncated"] = truncated
    return row


def row_messages(prompt_row: dict[str, Any], mode: str) -> list[dict[str, str]]:
    """The conversation for one prompt: the mode's messages, with any earlier turns an attack
    supplies (many-shot) between the system message and the prompt."""
    msgs = mode_messages(prompt_row["prompt"], mode)
    turns = list(prompt_row.get("turns") or [])
    return msgs[:-1] + turns + msgs[-1:] if turns else msgs


def prompt_text(tok: Any, prompt_row: dict[str, Any], mode: str) -> str:
    """What the model reads: the rendered conversation, then any prefill (the prefill attack
    starts the assistant's reply for it, right after the chat template's assistant header)."""
    return render_chat(tok, row_messages(prompt_row, mode)) + (prompt_row.get("prefill") or "")


def with_prefill(prompt_row: dict[str, Any], text: str) -> str:
    """The reply as the user sees it: the prefilled start, then what the model wrote after it."""
    pre = prompt_row.get("prefill") or ""
    return f"{pre}{text.lstrip()}" if pre else text


def answer_budget(text: str, ids: Sequence[int], decode: Callable[[Sequence[int]], str],
                  answer_tokens: int) -> tuple[str, bool]:
    """(text, cut?): the response with its answer (the part after any reflection, else the
    whole response) cut to `answer_tokens` generated tokens. `ids` are the tokens that made
    `text`; the answer starts at the first token whose prefix decodes past the reflection. The
    cut is on token ids, and greedy decoding does not depend on the cap, so the result is the
    response a budget counted from the end of the reflection would have produced."""
    reflection, answer = split_reflection(text)
    k = 0
    if reflection is not None:
        covered = len(text[: len(text) - len(answer)].rstrip()) if answer else len(text)
        k = next((j for j in range(len(ids) + 1) if len(decode(ids[:j]).strip()) >= covered), len(ids))
    if len(ids) - k <= answer_tokens:
        return text, False
    return decode(ids[: k + answer_tokens]).strip(), True


def generate_responses(out_file: Path, prompts: list[dict[str, Any]], *, model_name: str, model_label: str,
                       modes: Sequence[str], backend: str = "hf", max_new_tokens: int = 64,
                       batch_size: int = DEFAULT_BATCH_SIZE, dtype: str = "auto", device: str = "auto",
                       api: dict[str, Any] | None = None, progress: bool = True,
                       reflection_tokens: int = 0) -> dict[str, int]:
    """Responses of one model to every prompt under every mode, resumable by (id, mode).

    Rows are appended to `<out_file>.partial` as they are made (per batch on hf, per reply on
    openai); a rerun after a kill or a failed API call redoes only the missing (id, mode) pairs
    and the final file lists them in prompt order, mode by mode."""
    if backend not in ("hf", "vllm", "openai"):
        raise TbrError(f"unknown generate.backend {backend!r} (expected hf, vllm or openai)")
    if backend == "vllm" and not vllm_available():
        raise TbrError("generate.backend 'vllm' needs the gpu extra (pip install 'tbr[gpu]') and a CUDA GPU")
    app = RowAppender(out_file, key="key")
    todo = [(p, m) for m in modes for p in prompts if f"{p['id']}|{m}" not in app.done]
    resumed = len(app.rows)
    try:
        _generate_todo(app, todo, model_name=model_name, model_label=model_label, backend=backend,
                       max_new_tokens=max_new_tokens, batch_size=batch_size, dtype=dtype, device=device,
                       api=api, progress=progress, reflection_tokens=reflection_tokens)
    except BaseException:
        app.close()  # what was saved stays in the .partial file for the rerun
        raise
    order = [f"{p['id']}|{m}" for m in modes for p in prompts]
    app.finish(order)
    return {"responses": len(order), "resumed": resumed}


def _generate_todo(app: RowAppender, todo: list[tuple[dict[str, Any], str]], *, model_name: str,
                   model_label: str, backend: str, max_new_tokens: int, batch_size: int, dtype: str,
                   device: str, api: dict[str, Any] | None, progress: bool, reflection_tokens: int = 0) -> None:
    if not todo:
        return
    if backend == "hf":
        model, tok = load_model(model_name, dtype, device)
        texts = [prompt_text(tok, p, m) for p, m in todo]
        ended: list[bool] = []
        ids: list[list[int]] = []

        def decode(x: Sequence[int]) -> str:
            return str(tok.decode(list(x), skip_special_tokens=True))

        def save(idx: list[int], texts: list[str]) -> None:
            for i, t in zip(idx, texts):
                p, m = todo[i]
                truncated = not ended[i]
                if reflection_tokens:
                    t, was_cut = answer_budget(t, ids[i], decode, max_new_tokens)
                    truncated = truncated or was_cut
                t = with_prefill(p, t)
                app.add({"key": f"{p['id']}|{m}", **response_row(p, m, t, model_label, truncated)})
        hf_generate_texts(model, tok, texts, max_new_tokens=max_new_tokens + reflection_tokens, batch_size=batch_size,
                         progress=progress, desc=f"generate {model_label}", on_batch=save, finished=ended,
                         token_ids=ids)
        del model
    elif backend == "vllm":
        tok = load_tokenizer(model_name)
        texts = vllm_generate(resolve(model_name), [prompt_text(tok, p, m) for p, m in todo], max_new_tokens)
        for (p, m), t in zip(todo, texts):
            app.add({"key": f"{p['id']}|{m}", **response_row(p, m, with_prefill(p, t), model_label)})
    elif backend == "openai":
        api = api or {}
        base = api.get("api_base") or os.environ.get("TBR_API_BASE")
        if not base or not api.get("api_model"):
            raise TbrError("generate.backend 'openai' needs generate.api_base and generate.api_model")
        client = ChatClient(base, api["api_model"], api_key_env=api.get("api_key_env", "OPENAI_API_KEY"),
                            cache_dir=api.get("cache_dir"))
        failed = 0

        def save_one(i: int, t: Any) -> None:
            # saved as each reply arrives, so a kill loses nothing already answered
            nonlocal failed
            if isinstance(t, Exception):
                failed += 1  # not saved: a rerun retries exactly these
                return
            p, m = todo[i]
            app.add({"key": f"{p['id']}|{m}", **response_row(p, m, t, model_label)})
        if any(p.get("prefill") for p, _ in todo):
            raise TbrError("the prefill attack needs the hf or vllm backend: a chat API cannot start the reply")
        client.complete_many([row_messages(p, m) for p, m in todo],
                             max_tokens=max_new_tokens, temperature=0.0, progress=progress,
                             desc=f"generate {model_label}", on_result=save_one)
        if failed:
            raise TbrError(f"{failed} of {len(todo)} API generations failed; rerun to retry them")


def run(ctx: Context) -> None:
    """One responses file per evaluated model (untouched and trained)."""
    g = ctx.cfg.generate
    for sub in ctx.subjects():
        gcfg = to_dict(g)
        if not gcfg["reflection_tokens"]:  # runs made before the option keep their fingerprints
            gcfg.pop("reflection_tokens")
        # attack-wrapped prompts only where evaluate.attacks is set: other runs keep their fingerprints
        gfp = fingerprint("generate", gcfg, sub.fp, ctx.data_fp, ctx.dev, *([ctx.attack_fp] if ctx.attack_fp else []))
        ctx.generate_fps[sub.label] = gfp

        def do_generate(out: Path, lab: str = sub.label, path: str = sub.path) -> dict[str, Any]:
            return generate_responses(out / "responses.jsonl", ctx.eval_rows, model_name=path, model_label=lab,
                                      modes=g.modes, backend=g.backend, max_new_tokens=g.max_new_tokens,
                                      batch_size=g.batch_size, progress=ctx.progress,
                                      reflection_tokens=g.reflection_tokens if g.backend == "hf" else 0,
                                      api={"api_base": g.api_base, "api_model": g.api_model,
                                           "api_key_env": g.api_key_env, "cache_dir": ctx.api_cache},
                                      **ctx.dev)
        run_stage(ctx.root / NAME / folder_name(sub.label), stage=NAME, label=f"generate [{sub.label}]", fp=gfp,
                  config=gcfg, inputs={"model": sub.fp}, fn=do_generate, outputs=["responses.jsonl"],
                  owner=sub.label)
