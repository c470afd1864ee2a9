"""Generation backends and the generate stage.

- hf: batched `model.generate` with length-sorted batches (less padding), left padding, the
  KV cache, bf16 where the hardware has it, and stop strings.
- vllm: when installed and a GPU is present (the `gpu` extra).
- openai: any OpenAI-compatible endpoint, so an API model can be the subject of an evaluation.

The stage appends rows as it goes and resumes by id after a kill.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm.auto import tqdm

from tbr.errors import TbrError
from tbr.io import RowAppender
from tbr.prompts import mode_messages, split_reflection


def _trim_stops(text: str, stops: Sequence[str]) -> str:
    for s in stops:
        i = text.find(s)
        if i >= 0:
            text = text[:i]
    return text


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (so the first batch
    shows the peak memory at once rather than at the end)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def hf_generate_texts(model: Any, tok: Any, texts: Sequence[str], *, max_new_tokens: int = 64,
                      batch_size: int = 32, stop: Sequence[str] = (), do_sample: bool = False,
                      temperature: float = 0.7, top_p: float = 0.95, seed: int = 0, progress: bool = True,
                      desc: str = "generate", add_special_tokens: bool = False,
                      on_batch: Callable[[list[int], list[str]], None] | None = None) -> list[str]:
    """Completions of raw prompt strings (already templated). Greedy unless do_sample."""
    import torch
    tok.padding_side = "left"  # decoder-only models continue from the right edge
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    enc = [tok(t, add_special_tokens=add_special_tokens)["input_ids"] for t in texts]
    out: list[str] = [""] * len(texts)
    batches = length_sorted_batches([len(e) for e in enc], batch_size)
    eos = [i for i in {tok.eos_token_id, getattr(model.generation_config, "eos_token_id", None)} if i is not None]
    flat_eos: list[int] = []
    for e in eos:
        flat_eos.extend(e if isinstance(e, list) else [e])
    bar = tqdm(total=len(texts), desc=desc, unit="prompt", disable=not progress, leave=False)
    device = next(model.parameters()).device
    for b in batches:
        width = max(len(enc[i]) for i in b)
        ids = torch.full((len(b), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(b), width), dtype=torch.long)
        for row, i in enumerate(b):
            ids[row, width - len(enc[i]):] = torch.tensor(enc[i])
            mask[row, width - len(enc[i]):] = 1
        kwargs: dict[str, Any] = dict(max_new_tokens=max_new_tokens, do_sample=do_sample,
                                      pad_token_id=tok.pad_token_id, eos_token_id=flat_eos or None,
                                      use_cache=True)
        if do_sample:
            torch.manual_seed(seed)
            kwargs.update(temperature=temperature, top_p=top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if stop:
            kwargs.update(stop_strings=list(stop), tokenizer=tok)
        with torch.inference_mode():
            gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs)
        texts_b = tok.batch_decode(gen[:, width:], skip_special_tokens=True)
        texts_b = [_trim_stops(t, stop).strip() for t in texts_b]
        for i, t in zip(b, texts_b):
            out[i] = t
        if on_batch:
            on_batch(b, texts_b)
        bar.update(len(b))
    bar.close()
    return out


def render_chat(tok: Any, messages: list[dict[str, str]]) -> str:
    if getattr(tok, "chat_template", None) is None:
        # a base model without a chat template: plain "role: content" turns
        return "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages) + "Assistant:"
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def hf_generate_chat(model: Any, tok: Any, conversations: Sequence[list[dict[str, str]]], **kw: Any) -> list[str]:
    return hf_generate_texts(model, tok, [render_chat(tok, c) for c in conversations], **kw)


def make_local_generate_fn(model_name: str, dtype: str = "auto", device: str = "auto",
                           batch_size: int = 16) -> Callable[[list[list[dict[str, str]]], int], list[str]]:
    """A `generate_fn(conversations, max_new_tokens)` over a local model, loaded on first use
    (for LLM judges and guard models that run locally)."""
    state: dict[str, Any] = {}

    def fn(conversations: list[list[dict[str, str]]], max_new_tokens: int) -> list[str]:
        if "model" not in state:
            from tbr.models import load_model
            state["model"], state["tok"] = load_model(model_name, dtype, device)
        return hf_generate_chat(state["model"], state["tok"], conversations,
                                max_new_tokens=max_new_tokens, batch_size=batch_size, desc="judge")
    return fn


def vllm_available() -> bool:
    try:
        import torch
        import vllm  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


def _vllm_generate(model_path: str, texts: list[str], max_new_tokens: int) -> list[str]:
    from vllm import LLM, SamplingParams
    llm = LLM(model=model_path, dtype="auto")
    params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
    outs = llm.generate(texts, params)
    return [o.outputs[0].text.strip() for o in outs]


def response_row(prompt_row: dict[str, Any], mode: str, text: str, model_label: str) -> dict[str, Any]:
    reflection, answer = split_reflection(text)
    return {"id": prompt_row["id"], "suite": prompt_row["suite"], "prompt": prompt_row["prompt"],
            "mode": mode, "response": text, "reflection": reflection, "answer": answer, "model": model_label}


def generate_responses(out_file: Path, prompts: list[dict[str, Any]], *, model_name: str, model_label: str,
                       modes: Sequence[str], backend: str = "hf", max_new_tokens: int = 64, batch_size: int = 32,
                       dtype: str = "auto", device: str = "auto", api: dict[str, Any] | None = None,
                       progress: bool = True) -> dict[str, int]:
    """Responses of one model to every prompt under every mode, resumable by (id, mode)."""
    app = RowAppender(out_file, key="key")
    todo = [(p, m) for m in modes for p in prompts if f"{p['id']}|{m}" not in app.done]
    resumed = len(app.rows)
    if todo:
        if backend == "hf":
            from tbr.models import load_model
            model, tok = load_model(model_name, dtype, device)
            convs = [mode_messages(p["prompt"], m) for p, m in todo]

            def save(idx: list[int], texts: list[str]) -> None:
                for i, t in zip(idx, texts):
                    p, m = todo[i]
                    app.add({"key": f"{p['id']}|{m}", **response_row(p, m, t, model_label)})
            hf_generate_chat(model, tok, convs, max_new_tokens=max_new_tokens, batch_size=batch_size,
                             progress=progress, desc=f"generate {model_label}", on_batch=save)
            del model
        elif backend == "vllm":
            if not vllm_available():
                raise TbrError("generate.backend 'vllm' needs the gpu extra (pip install 'tbr[gpu]') and a CUDA GPU")
            from tbr.models import load_tokenizer, resolve
            tok = load_tokenizer(model_name)
            texts = _vllm_generate(resolve(model_name), [render_chat(tok, mode_messages(p["prompt"], m))
                                                         for p, m in todo], max_new_tokens)
            for (p, m), t in zip(todo, texts):
                app.add({"key": f"{p['id']}|{m}", **response_row(p, m, t, model_label)})
        elif backend == "openai":
            from tbr.remote import ChatClient
            api = api or {}
            base = api.get("api_base") or os.environ.get("TBR_API_BASE")
            if not base or not api.get("api_model"):
                raise TbrError("generate.backend 'openai' needs generate.api_base and generate.api_model")
            client = ChatClient(base, api["api_model"], api_key_env=api.get("api_key_env", "OPENAI_API_KEY"),
                                cache_dir=api.get("cache_dir"))
            replies = client.complete_many([mode_messages(p["prompt"], m) for p, m in todo],
                                           max_tokens=max_new_tokens, temperature=0.0,
                                           desc=f"generate {model_label}")
            failed = 0
            for (p, m), t in zip(todo, replies):
                if isinstance(t, Exception):
                    failed += 1  # not saved: a rerun retries exactly these
                    continue
                app.add({"key": f"{p['id']}|{m}", **response_row(p, m, t, model_label)})
            if failed:
                app.close()
                raise TbrError(f"{failed} of {len(todo)} API generations failed; rerun to retry them")
        else:
            raise TbrError(f"unknown generate.backend {backend!r} (expected hf, vllm or openai)")
    order = [f"{p['id']}|{m}" for m in modes for p in prompts]
    app.finish(order)
    return {"responses": len(order), "resumed": resumed}
