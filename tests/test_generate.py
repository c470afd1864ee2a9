"""tbr.generation and tbr.stages.generate: batched HF generation, stop strings, the resumable generate stage and its
backends, and a smoke run of the throughput benchmark. Tiny model, one thread."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fake_openai import echo, fake_server, status  # noqa: F401
from tbr import generation as E
from tbr.errors import TbrError
from tbr.prompts import split_reflection
from tbr.stages import generate as G

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["how do I kill a python process", "write a poem", "what is the capital of france",
           "explain step by step why the sky is blue and what makes the sunset look red",
           "hi", "tell me a definition of homonym please"]
ENV = "TBR_TEST_API_KEY"


@pytest.fixture(scope="module")
def varied_model(tiny_model, tmp_path_factory) -> Path:
    """The tiny model with an untied random output layer: the tied random model greedily
    repeats one token (a newline), which would make every comparison trivially equal."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    m = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    m.config.tie_word_embeddings = False
    gen = torch.Generator().manual_seed(1)
    m.lm_head.weight = torch.nn.Parameter(torch.randn(m.lm_head.weight.shape, generator=gen))
    out = tmp_path_factory.mktemp("varied") / "model"
    m.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def model_tok(varied_model):
    from tbr.models import load_model
    return load_model(str(varied_model), dtype="float32", device="cpu")


def _chat(tok, prompts):
    return [E.render_chat(tok, [{"role": "user", "content": p}]) for p in prompts]


def _prompt_rows(n: int) -> list[dict]:
    return [{"id": f"p{i}", "suite": "t", "prompt": PROMPTS[i % len(PROMPTS)] + f" {i}"} for i in range(n)]


# --- batching ------------------------------------------------------------------------------

def test_length_sorted_batches_exact():
    assert E.length_sorted_batches([3, 5, 1, 5, 2], 2) == [[1, 3], [0, 4], [2]]
    assert E.length_sorted_batches([3, 5, 1], 10) == [[1, 0, 2]]
    assert E.length_sorted_batches([], 4) == []
    lengths = [7, 3, 9, 9, 1, 4, 4, 8, 2]
    batches = E.length_sorted_batches(lengths, 4)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # each exactly once
    assert [len(b) for b in batches] == [4, 4, 1]
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat, reverse=True)  # longest first


def test_batched_equals_one_at_a_time(model_tok):
    """Left padding, attention mask and positions are right: a batch of prompts of different
    lengths gives exactly the greedy output of each prompt alone (float32)."""
    model, tok = model_tok
    texts = _chat(tok, PROMPTS)
    lens = {len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts}
    assert len(lens) > 2  # really different lengths, so there is padding
    batched = E.hf_generate_texts(model, tok, texts, max_new_tokens=12, batch_size=len(texts), progress=False)
    batched_tokens = E.last_run_stats["generated_tokens"]
    alone = [E.hf_generate_texts(model, tok, [t], max_new_tokens=12, batch_size=1, progress=False)[0]
             for t in texts]
    assert batched == alone
    assert any(batched)
    # and in batches of 4 (two batches, length-sorted), again the same
    assert E.hf_generate_texts(model, tok, texts, max_new_tokens=12, batch_size=4, progress=False) == alone
    assert E.last_run_stats["batches"] == 2
    assert E.last_run_stats["generated_tokens"] == batched_tokens
    assert 0 < batched_tokens <= 12 * len(texts)


def test_prefill_computes_logits_for_the_last_position_only(model_tok):
    model, tok = model_tok
    widths: list[int] = []
    h = model.lm_head.register_forward_hook(lambda mod, inp, out: widths.append(inp[0].shape[1]))
    try:
        E.hf_generate_texts(model, tok, _chat(tok, PROMPTS[:3]), max_new_tokens=3, progress=False)
    finally:
        h.remove()
    assert widths and set(widths) == {1}


def test_threads_not_raised_above_the_setting(monkeypatch):
    import torch
    cores = E.physical_cores()
    assert cores >= 1
    before = torch.get_num_threads()  # 1 in tests (OMP_NUM_THREADS=1, conftest)
    assert E.tune_threads() == min(before, cores)
    assert torch.get_num_threads() == min(before, cores)
    assert 1 <= E._threads_target(cores) <= cores
    monkeypatch.setenv("TBR_THREADS", "1")
    assert E.tune_threads() == 1 and torch.get_num_threads() == 1


# --- stop strings --------------------------------------------------------------------------

def test_stop_criterion_checks_only_generated_tail(model_tok):
    import torch
    _, tok = model_tok
    prompt = tok("sorry I cannot help", add_special_tokens=False)["input_ids"]
    gen_a = tok(" the capital of france", add_special_tokens=False)["input_ids"]
    gen_b = tok(" write a poem", add_special_tokens=False)["input_ids"]
    n = max(len(gen_a), len(gen_b))
    pad = tok.pad_token_id
    rows = [prompt + gen_a + [pad] * (n - len(gen_a)), prompt + gen_b + [pad] * (n - len(gen_b))]
    crit = E.StopOnStrings(tok, ["capital", "sorry"], prompt_width=len(prompt))
    # "sorry" is in the prompt only: never a stop; "capital" in row 0's generated text
    assert crit(torch.tensor(rows)).tolist() == [True, False]
    # a stopped row stays stopped
    assert crit(torch.tensor(rows)).tolist() == [True, False]


def test_stop_strings_cut_and_match_transformers(model_tok):
    model, tok = model_tok
    texts = _chat(tok, PROMPTS)
    free = E.hf_generate_texts(model, tok, texts, max_new_tokens=16, progress=False)
    # a stop string taken from the middle of one output (no whitespace, so strip() is neutral)
    src = max(free, key=len)
    stop = next(src[i:i + 2] for i in range(3, len(src) - 1) if not any(c.isspace() for c in src[i:i + 2]))
    cut = E.hf_generate_texts(model, tok, texts, max_new_tokens=16, stop=[stop], progress=False)
    for f, c in zip(free, cut):
        assert c == f[:f.find(stop)].strip() if stop in f else c == f
        assert stop not in c
    assert any(stop in f for f in free)
    # same outputs as transformers' own stop_strings criterion
    tok.padding_side = "left"
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    ref = model.generate(**enc, max_new_tokens=16, do_sample=False, stop_strings=[stop], tokenizer=tok,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    ref_texts = [E._trim_stops(t, [stop]).strip()
                 for t in tok.batch_decode(ref[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)]
    assert cut == ref_texts


def test_generation_ends_early_once_every_row_stopped(model_tok):
    model, tok = model_tok
    calls: list[int] = []
    h = model.model.register_forward_hook(lambda *a: calls.append(1))
    stops = [chr(c) for c in range(32, 127)] + ["\n", "\t", "\ufffd"]
    try:
        out = E.hf_generate_texts(model, tok, _chat(tok, PROMPTS), max_new_tokens=20, stop=stops, progress=False)
    finally:
        h.remove()
    assert len(calls) <= 3  # prefill (+ a step or two for a row whose token decoded to nothing)
    assert all(o == "" for o in out)
    assert E.last_run_stats["generated_tokens"] < 20 * len(PROMPTS)


# --- the generate stage --------------------------------------------------------------------

def _read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _check_rows(rows: list[dict], prompts: list[dict], modes: list[str]) -> None:
    assert [r["key"] for r in rows] == [f"{p['id']}|{m}" for m in modes for p in prompts]
    for r in rows:
        assert r["mode"] in modes and r["key"].endswith("|" + r["mode"])
        reflection, answer = split_reflection(r["response"])
        assert (r["reflection"], r["answer"]) == (reflection, answer)
        assert r["model"] == "tiny"


def test_generate_responses_hf_and_resume_after_kill(tmp_path, varied_model, monkeypatch):
    prompts, modes = _prompt_rows(5), ["plain", "cot"]
    opts = dict(model_name=str(varied_model), model_label="tiny", modes=modes, max_new_tokens=6,
                batch_size=3, dtype="float32", progress=False)
    full = tmp_path / "full.jsonl"
    assert G.generate_responses(full, prompts, **opts) == {"responses": 10, "resumed": 0}
    ref = _read(full)
    _check_rows(ref, prompts, modes)
    assert len({r["response"] for r in ref}) > 1
    assert not full.with_name(full.name + ".partial").exists()

    # a killed earlier attempt: three rows saved (not in prompt order) and a torn last line
    out = tmp_path / "resp.jsonl"
    partial = out.with_name(out.name + ".partial")
    saved = [ref[6], ref[0], ref[3]]
    partial.write_text("".join(json.dumps(r) + "\n" for r in saved) + '{"key": "p4|pl', encoding="utf-8")
    asked: list[int] = []
    real = G.hf_generate_texts

    def spy(model, tok, texts, **kw):
        asked.append(len(texts))
        return real(model, tok, texts, **kw)
    monkeypatch.setattr(G, "hf_generate_texts", spy)
    assert G.generate_responses(out, prompts, **opts) == {"responses": 10, "resumed": 3}
    assert asked == [7]  # only the missing ones
    rows = _read(out)
    _check_rows(rows, prompts, modes)
    assert len({r["key"] for r in rows}) == 10
    assert [r["response"] for r in rows] == [r["response"] for r in ref]
    assert not partial.exists()

    # resumption reads the .partial file only: once a file is finished, calling the function
    # again regenerates every row (the pipeline never does: it skips a finished stage by its
    # manifest, tests/test_pipeline.py), and greedy decoding gives the same file
    asked.clear()
    assert G.generate_responses(full, prompts, **opts) == {"responses": 10, "resumed": 0}
    assert asked == [10]
    assert _read(full) == ref


def test_vllm_backend_without_vllm_is_a_clear_error(tmp_path, tiny_model, monkeypatch):
    monkeypatch.setattr(G, "vllm_available", lambda: False)  # the same check on a machine that has vllm
    out = tmp_path / "r.jsonl"
    with pytest.raises(TbrError, match="vllm.*gpu extra"):
        G.generate_responses(out, _prompt_rows(2), model_name=str(tiny_model), model_label="tiny",
                             modes=["plain"], backend="vllm", progress=False)
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()


def test_unknown_backend(tmp_path):
    with pytest.raises(TbrError, match="unknown generate.backend"):
        G.generate_responses(tmp_path / "r.jsonl", _prompt_rows(1), model_name="x", model_label="x",
                             modes=["plain"], backend="nope")


def _api(server) -> dict:
    return {"api_base": server.url, "api_model": "fake-model", "api_key_env": ENV}


def test_openai_backend_rows(tmp_path, fake_server, monkeypatch):  # noqa: F811
    monkeypatch.setenv(ENV, "sk-test-0123456789")
    prompts, modes = _prompt_rows(4), ["plain", "direct"]
    out = tmp_path / "api.jsonl"
    res = G.generate_responses(out, prompts, model_name="api", model_label="tiny", modes=modes,
                               backend="openai", api=_api(fake_server), max_new_tokens=9, progress=False)
    assert res == {"responses": 8, "resumed": 0}
    rows = _read(out)
    _check_rows(rows, prompts, modes)
    for r in rows:
        assert r["response"] == "echo: " + r["prompt"]
    assert len(fake_server.requests) == 8
    bodies = [q["body"] for q in fake_server.requests]
    assert {b["max_tokens"] for b in bodies} == {9} and {b["temperature"] for b in bodies} == {0.0}
    assert sum(len(b["messages"]) == 2 for b in bodies) == 4  # the direct mode has a system turn


def test_openai_failed_rows_are_left_for_the_rerun(tmp_path, fake_server, monkeypatch):  # noqa: F811
    monkeypatch.setenv(ENV, "sk-test-0123456789")
    prompts, modes = _prompt_rows(5), ["plain", "direct"]
    prompts[2]["prompt"] = "FAIL this one"

    def flaky(body):
        return status(400, "bad request") if "FAIL" in body["messages"][-1]["content"] else echo(body)
    fake_server.default = flaky
    out = tmp_path / "api.jsonl"
    opts = dict(model_name="api", model_label="tiny", modes=modes, backend="openai", api=_api(fake_server),
                progress=False)
    with pytest.raises(TbrError, match="2 of 10 API generations failed"):
        G.generate_responses(out, prompts, **opts)
    partial = out.with_name(out.name + ".partial")
    assert not out.exists()
    saved = {r["key"] for r in _read(partial)}
    assert saved == {f"{p['id']}|{m}" for m in modes for p in prompts} - {"p2|plain", "p2|direct"}

    fake_server.default = echo
    n_before = len(fake_server.requests)
    assert G.generate_responses(out, prompts, **opts) == {"responses": 10, "resumed": 8}
    retried = [q["body"]["messages"][-1]["content"] for q in fake_server.requests[n_before:]]
    assert retried == ["FAIL this one"] * 2  # exactly the failed rows
    rows = _read(out)
    _check_rows(rows, prompts, modes)
    assert not partial.exists()


# --- the benchmark -------------------------------------------------------------------------

def test_benchmark_smoke_run():
    import os
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generate_throughput.py"), "--tiny",
                        "--n", "8", "--max-new-tokens", "8"], capture_output=True, text=True, env=env,
                       timeout=170, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = [x for x in p.stdout.splitlines() if x.strip()]
    assert re.fullmatch(r"ratio: \d+\.\d+", lines[-1]), lines[-1]
    assert any(x.startswith("tbr:") and "tokens/s" in x for x in lines)
    assert any(x.startswith("naive:") and "tokens/s" in x for x in lines)
    same = [int(m.group(1)) for x in lines if (m := re.match(r"identical outputs: (\d+)/8 = ", x))]
    # float32 on the tiny model: batched and one-at-a-time greedy decoding agree on nearly every
    # row (a row may differ where two logits tie to rounding); 0/8 would mean the benchmark
    # compares different things
    assert same and same[0] >= 6, lines


def test_threads_lowered_for_a_busy_generation_are_restored_before_training(monkeypatch):
    import torch

    import tbr.generation as gen
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("TBR_THREADS", raising=False)
    monkeypatch.setattr(gen, "physical_cores", lambda: 2)
    monkeypatch.setattr(gen, "_cores_busy_elsewhere", lambda window=0.2: 1.0)  # another process holds a core
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert gen.tune_threads() == 1 and torch.get_num_threads() == 1
        gen.reset_threads()
        assert torch.get_num_threads() == 2 and gen._threads_set_by_us is None
        torch.set_num_threads(1)  # the caller's own choice ...
        gen.reset_threads()
        assert torch.get_num_threads() == 1  # ... is left alone
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert gen.tune_threads() == 1 and gen._threads_set_by_us is None  # explicit: never tuned
    finally:
        torch.set_num_threads(before)
        gen._threads_set_by_us = None
