"""ChatClient against a real HTTP server on 127.0.0.1 (tests/fake_openai.py)."""
from __future__ import annotations

import json
import pickle
import threading
import time

import pytest

from fake_openai import FakeOpenAI, Reply, fake_server, hang, malformed, no_content, ok, status  # noqa: F401
from tbr.errors import TbrError
from tbr.remote import ChatClient, RemoteFailure, cache_key

pytestmark = pytest.mark.timeout(30)

KEY = "sk-test-VERY-SECRET-0123456789"
ENV = "TBR_TEST_API_KEY"
MSGS = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(ENV, KEY)


def client(server, **kw) -> ChatClient:
    opts = dict(api_key_env=ENV, timeout=2.0, max_retries=3, backoff_base=0.001, backoff_max=0.01)
    opts.update(kw)
    return ChatClient(server.url, "fake-model", **opts)


def test_success_sends_model_messages_params_and_key(fake_server):
    fake_server.push(ok("hello"))
    c = client(fake_server)
    assert c.complete(MSGS, temperature=0.0, max_tokens=7) == "hello"
    (req,) = fake_server.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == f"Bearer {KEY}"
    assert req["body"] == {"model": "fake-model", "messages": MSGS, "temperature": 0.0, "max_tokens": 7}


@pytest.mark.parametrize("first", [
    status(429, "slow down", retry_after="0"),
    status(500, "boom"),
    status(503, "overloaded"),
    malformed(),
    no_content(),
    Reply(200, json.dumps({"choices": [{"message": {"content": None}}]}).encode()),
], ids=["429", "500", "503", "not-json", "no-choices", "null-content"])
def test_retryable_then_success(fake_server, first):
    fake_server.push(first, ok("fine"))
    c = client(fake_server)
    assert c.complete(MSGS) == "fine"
    assert len(fake_server.requests) == 2
    assert c.stats["retries"] == 1


def test_retry_after_is_honoured(fake_server):
    fake_server.push(status(429, "rate limited", retry_after="0.3"), ok("fine"))
    c = client(fake_server)
    assert c.complete(MSGS) == "fine"
    t0, t1 = (r["time"] for r in fake_server.requests)
    assert t1 - t0 >= 0.28  # backoff alone would be ~0.001 s


def test_hang_past_timeout_then_success(fake_server):
    fake_server.push(hang(3.0), ok("after the hang"))
    c = client(fake_server, timeout=0.3)
    t = time.monotonic()
    assert c.complete(MSGS) == "after the hang"
    assert time.monotonic() - t < 2.0
    assert len(fake_server.requests) == 2


def test_always_500_gives_up_with_clear_message(fake_server):
    fake_server.default = lambda body: status(500, "internal meltdown")
    c = client(fake_server, max_retries=3)
    with pytest.raises(RemoteFailure) as info:
        c.complete(MSGS)
    msg = str(info.value)
    assert "gave up after 4 attempts" in msg
    assert "HTTP 500" in msg and "internal meltdown" in msg
    assert "fake-model" in msg and "\n" not in msg
    assert info.value.gave_up and info.value.status == 500
    assert len(fake_server.requests) == 4


def test_validation_failure_is_retried_then_gives_up(fake_server):
    fake_server.push(ok("bad"), ok("bad"), ok("good"))
    c = client(fake_server, max_retries=5)
    assert c.complete(MSGS, validate=lambda t: t == "good") == "good"
    assert len(fake_server.requests) == 3
    fake_server.default = lambda body: ok("bad")
    with pytest.raises(RemoteFailure, match="gave up after 2 attempts: last error: reply failed validation"):
        client(fake_server, max_retries=1).complete(MSGS, validate=lambda t: t == "good")


@pytest.mark.parametrize("code", [400, 401, 404, 422])
def test_client_errors_fail_at_once(fake_server, code):
    fake_server.push(status(code, "Invalid value for 'temperature': must be <= 2."))
    c = client(fake_server, max_retries=5)
    with pytest.raises(RemoteFailure) as info:
        c.complete(MSGS, temperature=9)
    assert len(fake_server.requests) == 1
    msg = str(info.value)
    assert f"HTTP {code}" in msg and "Invalid value for 'temperature'" in msg
    assert "gave up" not in msg and info.value.status == code and not info.value.gave_up


def test_server_echoing_the_key_is_redacted(fake_server):
    fake_server.push(status(401, f"Incorrect API key provided: {KEY}."))
    c = client(fake_server)
    with pytest.raises(RemoteFailure) as info:
        c.complete(MSGS)
    assert KEY not in str(info.value) and "***" in str(info.value)


def test_connection_refused_is_retried_then_gives_up():
    with FakeOpenAI() as server:
        url = server.url
    c = ChatClient(url, "m", api_key_env=ENV, max_retries=2, backoff_base=0.001, backoff_max=0.01)
    with pytest.raises(RemoteFailure, match="gave up after 3 attempts: last error: connection error"):
        c.complete(MSGS)


def test_cache_hit_makes_no_request_and_key_never_on_disk(fake_server, tmp_path):
    cache = tmp_path / "cache"
    fake_server.push(ok("cached answer"))
    c = client(fake_server, cache_dir=cache)
    assert c.complete(MSGS, temperature=0.5) == "cached answer"
    assert len(fake_server.requests) == 1
    assert fake_server.requests[0]["headers"]["Authorization"] == f"Bearer {KEY}"

    c2 = client(fake_server, cache_dir=cache)
    assert c2.complete(MSGS, temperature=0.5) == "cached answer"
    assert len(fake_server.requests) == 1 and c2.stats["cache_hits"] == 1
    # other params are another entry
    fake_server.push(ok("other"))
    assert c2.complete(MSGS, temperature=0.7) == "other"
    assert len(fake_server.requests) == 2

    files = [p for p in cache.rglob("*") if p.is_file()]
    assert len(files) == 2
    assert {p.stem for p in files} == {cache_key("fake-model", MSGS, {"temperature": 0.5}),
                                       cache_key("fake-model", MSGS, {"temperature": 0.7})}
    for p in files:
        data = p.read_bytes()
        assert KEY.encode() not in data and b"VERY-SECRET" not in data
        assert json.loads(data)["text"] in {"cached answer", "other"}
    assert not [p for p in cache.rglob("*.tmp")]


def test_failures_and_validation_failures_are_not_cached(fake_server, tmp_path):
    cache = tmp_path / "cache"
    fake_server.default = lambda body: status(500, "down")
    c = client(fake_server, cache_dir=cache, max_retries=1)
    with pytest.raises(RemoteFailure):
        c.complete(MSGS)
    fake_server.default = lambda body: ok("invalid")
    with pytest.raises(RemoteFailure):
        c.complete(MSGS, validate=lambda t: t != "invalid")
    assert not [p for p in cache.rglob("*") if p.is_file()]
    n = len(fake_server.requests)
    fake_server.default = lambda body: ok("now fine")
    assert c.complete(MSGS) == "now fine"
    assert len(fake_server.requests) == n + 1
    # a cached entry that fails today's validator is a miss, not a hit
    fake_server.push(ok("fresh"))
    assert c.complete(MSGS, validate=lambda t: t == "fresh") == "fresh"
    assert len(fake_server.requests) == n + 2


def test_concurrency_limit_respected(fake_server):
    fake_server.default = lambda body: ok("r:" + body["messages"][0]["content"], delay=0.1)
    c = client(fake_server, concurrency=3)
    items = [[{"role": "user", "content": str(i)}] for i in range(10)]
    seen = []
    out = c.complete_many(items, progress=False, on_result=lambda i, r: seen.append(i))
    assert out == [f"r:{i}" for i in range(10)]
    assert sorted(seen) == list(range(10))
    assert 2 <= fake_server.max_in_flight <= 3


def test_concurrency_bound_holds_across_threads(fake_server):
    fake_server.default = lambda body: ok("x", delay=0.05)
    c = client(fake_server, concurrency=2)
    threads = [threading.Thread(target=c.complete, args=(MSGS,)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(fake_server.requests) == 6 and fake_server.max_in_flight <= 2


def test_complete_many_returns_failures_in_place(fake_server):
    def respond(body):
        c = body["messages"][0]["content"]
        return status(400, "bad item") if c == "1" else ok("ok " + c)
    fake_server.default = respond
    c = client(fake_server, concurrency=2)
    items = [[{"role": "user", "content": str(i)}] for i in range(3)]
    out = c.complete_many(items, progress=True, desc="test")
    assert out[0] == "ok 0" and out[2] == "ok 2"
    assert isinstance(out[1], RemoteFailure) and "HTTP 400: bad item" in str(out[1])


def test_complete_many_per_item_validators(fake_server):
    fake_server.default = lambda body: ok(body["messages"][0]["content"])
    c = client(fake_server, max_retries=1)
    items = [[{"role": "user", "content": w}] for w in ("a", "b")]
    out = c.complete_many(items, validate=[lambda t: t == "a", lambda t: t == "zzz"], progress=False)
    assert out[0] == "a" and isinstance(out[1], RemoteFailure)


def test_interrupt_in_callback_cancels_the_rest(fake_server):
    fake_server.default = lambda body: ok("x", delay=0.02)
    c = client(fake_server, concurrency=1)
    items = [[{"role": "user", "content": str(i)}] for i in range(50)]

    def boom(i, r):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        c.complete_many(items, progress=False, on_result=boom)
    time.sleep(0.1)
    assert len(fake_server.requests) < 5


def test_missing_key_rules(monkeypatch):
    monkeypatch.delenv("TBR_NO_SUCH_KEY", raising=False)
    with pytest.raises(TbrError, match="TBR_NO_SUCH_KEY"):
        ChatClient("https://api.example.com/v1", "m", api_key_env="TBR_NO_SUCH_KEY")
    c = ChatClient("http://127.0.0.1:9/v1", "m", api_key_env="TBR_NO_SUCH_KEY")
    assert "api_key=unset" in repr(c)
    with pytest.raises(TbrError, match="http"):
        ChatClient("ftp://x/v1", "m", api_key_env=ENV)


def test_no_authorization_header_without_key(fake_server, monkeypatch):
    monkeypatch.delenv("TBR_NO_SUCH_KEY", raising=False)
    fake_server.push(ok("hi"))
    c = ChatClient(fake_server.url, "m", api_key_env="TBR_NO_SUCH_KEY")
    assert c.complete(MSGS) == "hi"
    assert "Authorization" not in fake_server.requests[0]["headers"]


def test_repr_and_pickle_do_not_leak_the_key(fake_server):
    c = ChatClient(fake_server.url.replace("127.0.0.1", "user:pw@127.0.0.1") + "?api-key=zzz",
                   "fake-model", api_key_env=ENV)
    text = repr(c) + str(c)
    assert KEY not in text and "pw" not in text and "zzz" not in text
    assert "api_key=set" in text
    with pytest.raises(TypeError):
        pickle.dumps(c)
    fake_server.push(ok("hi"))
    assert c.complete(MSGS) == "hi"
    assert fake_server.requests[0]["path"] == "/v1/chat/completions?api-key=zzz"


def test_reserved_params_rejected(fake_server):
    c = client(fake_server)
    with pytest.raises(ValueError, match="stream"):
        c.complete(MSGS, stream=True)
