"""API keys come from the environment only and end up in no file, log, manifest or message:
the whole pipeline runs with external reflections and the openai generate backend against the
fake server (tests/fake_openai.py) with a distinctive key, then every byte under the run
directory and everything printed is searched for it. Also when the server echoes the key back in
an error (a failing run's one-line message must not carry it)."""
from __future__ import annotations

import pytest

from conftest import tiny_overrides
from fake_openai import fake_server, ok, status  # noqa: F401
from test_kill import run_tbr

KEY = "sk-tbr-SECRET-7f3a9c1e5b2d-do-not-leak"
ENV = "TBR_SECRET_TEST_KEY"


def respond(body: dict):
    content = body["messages"][-1]["content"]
    if "### Now revise this one" in content:  # the external reflection prompt
        refusal = content.rsplit("\n\nOutput:\n", 1)[1].rsplit("\n\nRevised output:", 1)[0]
        return ok(f"Reasoning: this request could hurt people, so I should not help.\n\n{refusal}")
    return ok("Sure, here is how: first, open a terminal.")


def api_overrides(server_url: str) -> list[str]:
    return [f"reflect.api_base={server_url}", "reflect.api_model=fake-strong", f"reflect.api_key_env={ENV}",
            "reflect.source=[external]", "reflect.max_retries=1", "generate.backend=openai",
            f"generate.api_base={server_url}", "generate.api_model=fake-subject", f"generate.api_key_env={ENV}"]


def assert_no_key(root, *texts: str) -> int:
    assert KEY not in "".join(texts)
    n = 0
    for p in root.rglob("*"):
        if p.is_file():
            n += 1
            data = p.read_bytes()
            assert KEY.encode() not in data, f"the API key is in {p}"
            assert KEY[8:24].encode() not in data, f"part of the API key is in {p}"
    return n


@pytest.mark.timeout(180)
def test_key_appears_nowhere(tmp_path, tiny_model, tiny_data, fake_server):
    fake_server.default = respond
    cfg = tiny_overrides(tiny_model, tiny_data, tmp_path / "runs", "sec") + api_overrides(fake_server.url)
    p = run_tbr(cfg, tmp_path, timeout=150, **{ENV: KEY})
    assert p.returncode == 0, p.stderr[-3000:]
    # the key went where it belongs: the Authorization header of every request
    assert fake_server.requests and all(r["headers"]["Authorization"] == f"Bearer {KEY}"
                                        for r in fake_server.requests)
    root = tmp_path / "runs" / "sec"
    assert (root / "metrics.json").exists() and list((root / "cache" / "api").rglob("*"))
    assert assert_no_key(tmp_path, p.stdout, p.stderr) > 20


def test_key_echoed_by_a_failing_server_is_not_printed(tmp_path, tiny_model, tiny_data, fake_server):
    fake_server.default = lambda body: status(401, f"Incorrect API key provided: {KEY}")
    cfg = tiny_overrides(tiny_model, tiny_data, tmp_path / "runs", "sec401") + api_overrides(fake_server.url)
    p = run_tbr(cfg, tmp_path, timeout=120, **{ENV: KEY})
    assert p.returncode == 2, p.stderr[-3000:]
    assert "Traceback" not in p.stderr and p.stderr.strip().splitlines()[-1].startswith("tbr: error: ")
    assert "401" in p.stderr
    assert_no_key(tmp_path, p.stdout, p.stderr)

