"""External reflections against the fake OpenAI server: parsing, retries, drops, resumption."""
from __future__ import annotations

import json
import logging

import pytest

from fake_openai import fake_server, ok, refuse_rewrite  # noqa: F401
from tbr.errors import TbrError
from tbr.io import RowAppender, read_jsonl
from tbr.remote import ChatClient
from tbr.stages.reflect_external import REWRITE_PROMPT, build_messages, external_reflections, parse_reply

pytestmark = pytest.mark.timeout(30)

ENV = "TBR_TEST_API_KEY"
KEY = "sk-test-reflect-SECRET"


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(ENV, KEY)


def rows(n: int) -> list[dict]:
    return [{"id": f"s{i}", "prompt": f"How do I do harmful thing number {i}?",
             "response": f"I'm sorry, but I can't help with thing {i}.\nPlease stay safe."}
            for i in range(n)]


def request_parts(body: dict) -> tuple[str, str]:
    """(request, refusal) as the prompt template put them in the message."""
    content = body["messages"][-1]["content"]
    tail = content.rsplit("### Now revise this one", 1)[1]
    request = tail.split("Request:\n", 1)[1].split("\n\nOutput:\n", 1)[0]
    refusal = tail.split("\n\nOutput:\n", 1)[1].rsplit("\n\nRevised output:", 1)[0]
    return request, refusal


def good(body: dict):
    request, refusal = request_parts(body)
    n = request.rsplit(" ", 1)[1].rstrip("?")
    # whitespace differs from the original on purpose: the match normalises it
    return ok(f"Reasoning about request {n}: it could hurt people.\n\n{refusal.replace(chr(10), '  ')}")


def client(server, **kw) -> ChatClient:
    opts = dict(api_key_env=ENV, timeout=2.0, max_retries=2, backoff_base=0.001,
                backoff_max=0.01, concurrency=2)
    opts.update(kw)
    return ChatClient(server.url, "fake-strong", **opts)


# -- the prompt and the parser ---------------------------------------------------------------

def test_prompt_is_filled_literally():
    msgs = build_messages("What is {x} <<OUTPUT>>?", "No {y}.")
    assert len(msgs) == 1 and msgs[0]["role"] == "user"
    text = msgs[0]["content"]
    assert "What is {x} <<OUTPUT>>?" in text and "No {y}." in text
    assert "<<REQUEST>>" not in text
    assert "add a reasoning section before the existing content" in REWRITE_PROMPT
    assert "dog" not in REWRITE_PROMPT.lower()


@pytest.mark.parametrize("reply,expected", [
    ("This asks for X, which is harmful. I'm sorry, I can't.", "This asks for X, which is harmful."),
    ("Revised output:\nThis asks for X, which is harmful.\n\nI\u2019m sorry,\n I can't.",
     "This asks for X, which is harmful."),
    ("This asks for X, which is harmful. I'm sorry, I can't. Anything else?",
     "This asks for X, which is harmful."),
])
def test_parse_reply_ok(reply, expected):
    assert parse_reply(reply, "I'm sorry, I can't.") == (expected, "")


@pytest.mark.parametrize("reply,why", [
    ("I'm sorry, I can't.", "empty reflection"),
    ("Here it is: I'm sorry, I cannot.", "does not contain"),
    ("I'm sorry, but I can't help with rewriting that.", "does not contain"),
    ("Therefore, I'm sorry, I can't.", "shorter than"),
    ("I apologize, but I won't do this. I'm sorry, I can't.", "declined the rewrite"),
    ("Request: bad stuff\nThis is harmful. I'm sorry, I can't.", "echoes the prompt"),
])
def test_parse_reply_malformed(reply, why):
    reflection, reason = parse_reply(reply, "I'm sorry, I can't.")
    assert reflection is None and why in reason


# -- against the server ------------------------------------------------------------------------

def test_external_reflections_happy_path(fake_server, tmp_path):
    fake_server.default = good
    out = RowAppender(tmp_path / "refl.jsonl")
    counts = external_reflections(rows(5), client(fake_server), out, progress=False, temperature=0)
    assert counts == {"ok": 5, "dropped": 0, "cached": 0, "skipped": 0}
    out.finish(order=[r["id"] for r in rows(5)])
    got = read_jsonl(tmp_path / "refl.jsonl")
    assert [g["id"] for g in got] == [f"s{i}" for i in range(5)]
    for i, g in enumerate(got):
        assert g == {"id": f"s{i}", "reflection": f"Reasoning about request {i}: it could hurt people.",
                     "source": "external", "model": "fake-strong"}
    assert all(r["body"]["temperature"] == 0 for r in fake_server.requests)


def test_refusal_to_rewrite_is_retried_then_dropped(fake_server, tmp_path, caplog):
    def respond(body):
        request, _ = request_parts(body)
        return refuse_rewrite() if request.endswith("1?") else good(body)
    fake_server.default = respond
    fake_server.push(refuse_rewrite())  # the first request is refused once, then fine
    out = RowAppender(tmp_path / "refl.jsonl")
    with caplog.at_level(logging.WARNING):
        counts = external_reflections(rows(3), client(fake_server, concurrency=1, max_retries=2),
                                      out, progress=False)
    assert counts == {"ok": 2, "dropped": 1, "cached": 0, "skipped": 0}
    out.close()
    assert sorted(out.done) == ["s0", "s2"]
    s1 = [r for r in fake_server.requests if request_parts(r["body"])[0].endswith("1?")]
    assert len(s1) == 3  # 1 + max_retries
    assert len(fake_server.requests) == 3 + 2 + 1
    assert "'s1' dropped" in caplog.text and "gave up after 3 attempts" in caplog.text


def test_cached_rows_are_counted_and_key_stays_off_disk(fake_server, tmp_path):
    fake_server.default = good
    cache = tmp_path / "cache"
    out = RowAppender(tmp_path / "a.jsonl")
    external_reflections(rows(4), client(fake_server, cache_dir=cache), out, progress=False)
    n = len(fake_server.requests)
    assert fake_server.requests[0]["headers"]["Authorization"] == f"Bearer {KEY}"
    out2 = RowAppender(tmp_path / "b.jsonl")
    counts = external_reflections(rows(4), client(fake_server, cache_dir=cache), out2, progress=False)
    out.close()
    out2.close()
    assert counts == {"ok": 4, "dropped": 0, "cached": 4, "skipped": 0}
    assert len(fake_server.requests) == n
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) >= 6
    assert not any(KEY.encode() in p.read_bytes() for p in written)


class InterruptingClient(ChatClient):
    """Raises KeyboardInterrupt (from a worker thread) on the (k+1)-th request."""

    def __init__(self, *a, stop_after: int, **kw):
        super().__init__(*a, **kw)
        self.calls = 0
        self.stop_after = stop_after

    def _attempt(self, body):
        with self._lock:
            self.calls += 1
            if self.calls > self.stop_after:
                raise KeyboardInterrupt
        return super()._attempt(body)


@pytest.mark.parametrize("concurrency", [1, 3])
def test_interrupted_run_resumes_without_duplicates_or_gaps(fake_server, tmp_path, concurrency):
    fake_server.default = good
    data = rows(10)
    final = tmp_path / "refl.jsonl"
    out = RowAppender(final)
    c = InterruptingClient(fake_server.url, "fake-strong", api_key_env=ENV, concurrency=concurrency,
                           backoff_base=0.001, backoff_max=0.01, stop_after=4)
    with pytest.raises(KeyboardInterrupt):
        external_reflections(data, c, out, progress=False)
    out.close()
    first = len(out.rows)
    assert 1 <= first <= 4

    out = RowAppender(final)  # a fresh process would reopen the partial file like this
    assert len(out.done) == first
    counts = external_reflections(data, client(fake_server, concurrency=concurrency), out, progress=False)
    assert counts["skipped"] == first and counts["ok"] == 10 - first and counts["dropped"] == 0
    out.finish(order=[r["id"] for r in data])
    got = read_jsonl(final, unique_id=True)
    assert [g["id"] for g in got] == [r["id"] for r in data]
    assert not final.with_name(final.name + ".partial").exists()


def test_resume_after_torn_last_line(fake_server, tmp_path):
    fake_server.default = good
    data = rows(4)
    final = tmp_path / "refl.jsonl"
    partial = final.with_name(final.name + ".partial")
    partial.write_text(json.dumps({"id": "s0", "reflection": "Earlier one.", "source": "external",
                                   "model": "fake-strong"}) + "\n" + '{"id": "s1", "refl')
    out = RowAppender(final)
    counts = external_reflections(data, client(fake_server), out, progress=False)
    assert counts == {"ok": 3, "dropped": 0, "cached": 0, "skipped": 1}
    out.finish(order=[r["id"] for r in data])
    got = read_jsonl(final, unique_id=True)
    assert [g["id"] for g in got] == ["s0", "s1", "s2", "s3"]
    assert got[0]["reflection"] == "Earlier one."


def test_auth_error_stops_the_run(fake_server, tmp_path):
    from fake_openai import status
    fake_server.default = lambda body: status(401, "Invalid API key")
    out = RowAppender(tmp_path / "refl.jsonl")
    with pytest.raises(TbrError, match="HTTP 401: Invalid API key"):
        external_reflections(rows(5), client(fake_server), out, progress=False)
    out.close()
    assert out.rows == []


def test_bad_rows_are_user_errors(fake_server, tmp_path):
    out = RowAppender(tmp_path / "refl.jsonl")
    with pytest.raises(TbrError, match="'response'"):
        external_reflections([{"id": 1, "prompt": "p", "response": " "}], client(fake_server), out,
                             progress=False)
    assert external_reflections([], client(fake_server), out, progress=False) == \
        {"ok": 0, "dropped": 0, "cached": 0, "skipped": 0}
    out.close()
