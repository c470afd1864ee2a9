"""Text generation with a local model: batched `model.generate` (length-sorted batches, left
padding, the KV cache, stop strings, a thread count tuned to the free cores) and vLLM where it
is installed with a GPU. The generate and reflect stages and the LLM judges all generate
through these functions.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from tbr.decode_attention import decode_attention_for
from tbr.models import load_model


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


# Prompts per batch on the hf backend. Measured on a 2-core AVX-512 CPU (embedded 135M model,
# bf16, 2 threads, 64 prompts x 64 new tokens): batch 16 about 190-220 tokens/s, 32 about 285-290,
# 64 about 330. The KV cache of 64 rows of a small model is a few MB.
DEFAULT_BATCH_SIZE = 64

# What the latest hf_generate_texts call did (read by the throughput benchmark and for logs):
# prompts, batches, generated tokens (per row up to and including its EOS or stop), seconds.
last_run_stats: dict[str, float] = {}


def physical_cores() -> int:
    """Physical cores this process may run on (hyperthreads counted once)."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = os.cpu_count() or 1
    cores: set[tuple[str, str]] = set()
    try:
        phys = core = ""
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("physical id"):
                phys = line.split(":", 1)[1].strip()
            elif line.startswith("core id"):
                core = line.split(":", 1)[1].strip()
                cores.add((phys, core))
    except OSError:
        pass
    return max(1, min(len(cores) or allowed, allowed))


_threads_set_by_us: int | None = None


def _cores_busy_elsewhere(window: float = 0.2) -> float | None:
    """How many CPUs other processes keep busy now: all CPUs' busy time over a short window
    (/proc/stat) less this process's own CPU time. None where /proc/stat is missing."""
    def busy() -> float:
        with open("/proc/stat") as f:
            v = [float(x) for x in f.readline().split()[1:]]
        return sum(v[:8]) - v[3] - v[4]  # all but idle and iowait (guest time is in user)
    try:
        hz = os.sysconf("SC_CLK_TCK")
        b0, own0 = busy(), time.process_time()
        time.sleep(window)
        b1, own1 = busy(), time.process_time()
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, ((b1 - b0) / hz - (own1 - own0)) / window)


def _threads_target(cores: int) -> int:
    """Physical cores, less those other processes keep busy. torch's OpenMP pool splits each
    op statically across its threads, so one thread preempted by another process stalls the
    whole op: on a 2-core machine with other busy processes, batched bf16 decoding ran at
    8 tokens/s on 2 threads against 95 on 1 (benchmarks/generate_throughput.py)."""
    if cores <= 1:
        return 1
    others = _cores_busy_elsewhere()
    if others is None:
        return cores
    return max(1, min(cores, cores - int(others + 0.5)))


def tune_threads() -> int:
    """Torch's intra-op threads for CPU generation: TBR_THREADS if set; else an explicit
    OMP_NUM_THREADS or torch.set_num_threads below the core count is respected (tests set 1),
    never raised; else the physical cores (hyperthreads only add contention to the matmuls),
    fewer when other processes already keep cores busy. Returns the thread count used."""
    global _threads_set_by_us
    import torch  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
    cores = physical_cores()
    n = torch.get_num_threads()
    env = os.environ.get("TBR_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        target = _threads_set_by_us = int(env)
    elif os.environ.get("OMP_NUM_THREADS") or (n < cores and n != _threads_set_by_us):
        target = min(n, cores)  # the caller's choice
    else:
        target = _threads_set_by_us = _threads_target(cores)
    if target != n:
        torch.set_num_threads(target)
    return target


def reset_threads() -> None:
    """Undo what tune_threads lowered, before work that is not generation: one process runs many
    stages (a study runs many experiments), and a count lowered because other processes were busy
    during one generation would otherwise stay for every training after it (seen: 66 s/step
    instead of 16 on 2 cores). A count the caller chose (TBR_THREADS, OMP_NUM_THREADS,
    set_num_threads) is left alone."""
    global _threads_set_by_us
    if _threads_set_by_us is None or os.environ.get("TBR_THREADS", "").strip():
        return
    import torch  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
    if torch.get_num_threads() == _threads_set_by_us:
        torch.set_num_threads(physical_cores())
    _threads_set_by_us = None


class StopOnStrings:
    """Per-row stop strings for `model.generate`, cheap at any vocabulary size.

    transformers' `stop_strings` builds a vocab-sized table for every `generate` call (about
    0.2-0.7 s for a 49k vocab, i.e. per batch). This criterion instead decodes, each step, only
    a short tail of the generated tokens of rows not yet stopped: a stop string that appears at
    step t ends in the newest token (it was absent at t-1), so it lies within the last
    len(stop) characters, i.e. the last len(stop) + slack tokens. A stopped row is marked
    finished (generate pads it from then on) and `generate` returns as soon as every row is
    finished (EOS or stop). Outputs equal those of `stop_strings` after trimming.
    """

    def __init__(self, tok: Any, stops: Sequence[str], prompt_width: int, slack: int = 8) -> None:
        self.tok = tok
        self.stops = [s for s in stops if s]
        self.prompt_width = prompt_width
        self.window = max((len(s) for s in self.stops), default=0) + slack
        self.stopped: Any = None

    def __call__(self, input_ids: Any, scores: Any = None, **kwargs: Any) -> Any:
        import torch  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
        batch, length = input_ids.shape
        if self.stopped is None or self.stopped.shape[0] != batch:
            self.stopped = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
        if not self.stops:
            return self.stopped.clone()
        start = max(self.prompt_width, length - self.window)
        rows = [i for i, s in enumerate(self.stopped.tolist()) if not s]
        if rows and length > start:
            tails = input_ids[rows, start:].tolist()
            for i, text in zip(rows, self.tok.batch_decode(tails, skip_special_tokens=True)):
                if any(s in text for s in self.stops):
                    self.stopped[i] = True
        return self.stopped.clone()


def _stopping_list(crit: StopOnStrings) -> Any:
    from transformers import StoppingCriteria, StoppingCriteriaList  # transformers: heavy, loaded on first use

    class _Crit(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return crit(input_ids, scores)
    return StoppingCriteriaList([_Crit()])


def _eos_ids(model: Any, tok: Any) -> list[int]:
    flat: list[int] = []
    for e in (tok.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        for i in (e if isinstance(e, (list, tuple)) else [e]):
            if i is not None and i not in flat:
                flat.append(int(i))
    return flat


def _generated_tokens(gen: Any, eos: Sequence[int], pad: int | None) -> list[int]:
    """Tokens each row generated, up to and including its first EOS; a row cut by a stop
    string is padded from then on, so the pad token ends a row too."""
    import torch  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
    n = gen.shape[1]
    ends = torch.zeros_like(gen, dtype=torch.bool)
    for e in [*eos, *([pad] if pad is not None else [])]:
        ends |= gen == e
    counts = []
    for row in ends.tolist():
        counts.append(row.index(True) + 1 if True in row else n)
    return counts


def _generate_kwargs(max_new_tokens: int, do_sample: bool, pad: int | None, eos: Sequence[int],
                     temperature: float, top_p: float) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(max_new_tokens=max_new_tokens, do_sample=do_sample,
                                  pad_token_id=pad, eos_token_id=list(eos) or None, use_cache=True)
    if do_sample:
        kwargs.update(temperature=temperature, top_p=top_p)
    else:  # unset, so the model's generation_config cannot turn greedy decoding into sampling
        kwargs.update(temperature=None, top_p=None, top_k=None)
    return kwargs


def _record_ends(batch: Sequence[int], rows: Sequence[Sequence[int]], counts: Sequence[int], ends: set[int],
                 cap: int, finished: list[bool] | None, token_ids: list[list[int]] | None, size: int = -1) -> None:
    """Per row of a batch: did it end by itself, and which tokens did it generate (size >= 0:
    reset both lists to that many rows first). A row ended by itself when an end token closes
    it (a stop string pads the rest), or when the batch stopped before the cap (generate stops
    once every row is done)."""
    if size >= 0:
        if finished is not None:
            finished[:] = [False] * size
        if token_ids is not None:
            token_ids[:] = [[] for _ in range(size)]
    for i, row, k in zip(batch, rows, counts):
        if finished is not None:
            finished[i] = len(row) < cap or k < len(row) or (bool(row) and row[-1] in ends)
        if token_ids is not None:
            token_ids[i] = list(row[:k])


def _left_padded(rows: Sequence[Sequence[int]], pad: int) -> tuple[Any, Any]:
    """(input ids, attention mask) of one batch, padded on the left: decoder-only models
    continue from the right edge."""
    import torch  # torch: keeps `tbr --help` and bad-input errors fast
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, r in enumerate(rows):
        ids[row, width - len(r):] = torch.tensor(r, dtype=torch.long)
        mask[row, width - len(r):] = 1
    return ids, mask


def _generate_batch(model: Any, tok: Any, rows: list[list[int]], pad: int, device: Any,
                    stop: Sequence[str], kwargs: dict[str, Any]) -> Any:
    """One left-padded batch through model.generate: the generated ids only, on the CPU."""
    import torch  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
    ids, mask = _left_padded(rows, pad)
    width = ids.shape[1]
    if stop:  # a new dict: the stopping criteria hold this batch's prompt width
        kwargs = {**kwargs, "stopping_criteria": _stopping_list(StopOnStrings(tok, stop, width))}
    with torch.inference_mode():
        gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs)
    return gen[:, width:].cpu()


def hf_generate_texts(model: Any, tok: Any, texts: Sequence[str], *, max_new_tokens: int = 64,
                      batch_size: int = DEFAULT_BATCH_SIZE, stop: Sequence[str] = (), do_sample: bool = False,
                      temperature: float = 0.7, top_p: float = 0.95, seed: int = 0, progress: bool = True,
                      desc: str = "generate", add_special_tokens: bool = False,
                      on_batch: Callable[[list[int], list[str]], None] | None = None,
                      finished: list[bool] | None = None, token_ids: list[list[int]] | None = None,
                      grouped_decode: bool = True) -> list[str]:
    """Completions of raw prompt strings (already templated). Greedy unless do_sample. Fills
    `finished` (did each row end by itself) and `token_ids` (its generated ids) when given,
    before each on_batch call. Fast: length-sorted left-padded batches, KV cache, per-row stop
    strings, early exit, prefill logits for the last position only, threads on the physical
    cores, and on a CPU decode attention without the per-head KV copy (tbr.decode_attention;
    grouped_decode=False keeps the model's sdpa)."""
    import torch  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
    tok.padding_side = "left"  # decoder-only models continue from the right edge
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    device = next(model.parameters()).device
    if device.type == "cpu":
        tune_threads()
    stop = [s for s in stop if s]
    enc = tok(list(texts), add_special_tokens=add_special_tokens)["input_ids"] if texts else []
    out: list[str] = [""] * len(texts)
    _record_ends([], [], [], set(), 0, finished, token_ids, size=len(texts))
    batches = length_sorted_batches([len(e) for e in enc], max(1, int(batch_size)))
    eos, pad = _eos_ids(model, tok), tok.pad_token_id
    stats = {"prompts": len(texts), "batches": len(batches), "generated_tokens": 0, "seconds": 0.0}
    last_run_stats.clear()
    last_run_stats.update(stats)
    bar = tqdm(total=len(texts), desc=desc, unit="prompt", disable=not progress, leave=False)
    t0 = time.perf_counter()
    with decode_attention_for(model, enabled=grouped_decode and device.type == "cpu"):
        for b in batches:
            kwargs = _generate_kwargs(max_new_tokens, do_sample, pad, eos, temperature, top_p)
            if do_sample:
                torch.manual_seed(seed)
            gen = _generate_batch(model, tok, [enc[i] for i in b], pad, device, stop, kwargs)
            counts = _generated_tokens(gen, eos, pad)
            stats["generated_tokens"] += sum(counts)
            _record_ends(b, gen.tolist(), counts, {*eos, *([pad] if pad is not None else [])}, max_new_tokens,
                         finished, token_ids)
            texts_b = tok.batch_decode(gen, skip_special_tokens=True)
            texts_b = [_trim_stops(t, stop).strip() for t in texts_b]
            for i, t in zip(b, texts_b):
                out[i] = t
            if on_batch:
                on_batch(b, texts_b)
            stats["seconds"] = time.perf_counter() - t0
            last_run_stats.update(stats)
            bar.update(len(b))
            if stats["seconds"] > 0:
                bar.set_postfix(tok_s=f"{stats['generated_tokens'] / stats['seconds']:.0f}", refresh=False)
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
                           batch_size: int = DEFAULT_BATCH_SIZE) -> Callable[[list[list[dict[str, str]]], int], list[str]]:
    """A `generate_fn(conversations, max_new_tokens)` over a local model, loaded on first use
    (for LLM judges and guard models that run locally)."""
    state: dict[str, Any] = {}

    def fn(conversations: list[list[dict[str, str]]], max_new_tokens: int) -> list[str]:
        if "model" not in state:
            state["model"], state["tok"] = load_model(model_name, dtype, device)
        return hf_generate_chat(state["model"], state["tok"], conversations,
                                max_new_tokens=max_new_tokens, batch_size=batch_size, desc="judge")
    return fn


def vllm_available() -> bool:
    try:
        import torch  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
        import vllm  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


def vllm_generate(model_path: str, texts: list[str], max_new_tokens: int) -> list[str]:
    from vllm import LLM, SamplingParams  # vllm: optional (gpu extra)
    llm = LLM(model=model_path, dtype="auto")
    params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
    outs = llm.generate(texts, params)
    return [o.outputs[0].text.strip() for o in outs]
