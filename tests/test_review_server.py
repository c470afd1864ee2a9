"""The local labelling page (tbr.review.server): the HTTP API with urllib, and the page itself
driven by keyboard in headless Chromium through Selenium: labels land on disk in order, a reload
resumes at the first unlabelled row, the judges' verdicts and the model names never reach the
browser, a wrong token is refused, and adjudication shows only the rows reviewers disagree on.

Chromium and chromedriver are Debian's packages; the session fixture installs them when missing
(CI runs as root on a fresh machine) and skips with the reason only when it cannot. Selenium is
always given the driver's path, so Selenium Manager never tries to download one."""
from __future__ import annotations

import json
import os
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import apt_install
from tbr.errors import TbrError
from tbr.review.server import PUBLIC_FIELDS, ReviewServer, make_server
from tbr.review.store import append_label, final_labels, read_labels, write_sample

MODELS = ("model-zeta-secret", "model-omega-hidden")
JUDGES = ("judge-kappa", "judge-lambda")
STRATUM = "stratum-quokka"
# what must never reach the reviewer's browser: who wrote the answer, who judged it, how it was drawn
SECRETS = (*MODELS, *JUDGES, STRATUM, "verdicts", "prompt_label")
EVIL = '<b id="evil">bold</b><img src=x onerror="document.title=\'pwned\'">'
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
                  "--window-size=1200,900")
WAIT_S = 10


def _rows(n: int = 8) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        reflection = f"Reflection {i}: the request is about topic {i} and seems harmless." if i % 2 == 0 else None
        answer = f"Answer {i}: here is how topic {i} works." + (EVIL if i == 1 else "")
        response = f"{reflection}\n\n{answer}" if reflection else answer
        rows.append({"rid": f"rid{i:02d}", "model": MODELS[i % 2], "mode": "plain", "id": f"p{i}",
                     "prompt": f"Prompt {i}: tell me about topic {i}.", "response": response,
                     "reflection": reflection, "answer": answer, "prompt_label": "safe" if i % 3 else "unsafe",
                     "verdicts": {JUDGES[0]: "full_refusal", JUDGES[1]: "full_compliance"},
                     "stratum": f"{STRATUM}-{i % 2}"})
    return rows


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    f = tmp_path / "review"
    write_sample(f, {"seed": 0, "strata": {f"{STRATUM}-0": {"N": 4, "n": 4}, f"{STRATUM}-1": {"N": 4, "n": 4}}},
                 _rows())
    return f


@pytest.fixture
def serve() -> Iterator[Callable[..., ReviewServer]]:
    """Start review servers in threads; every one is shut down and closed afterwards."""
    started: list[tuple[ReviewServer, threading.Thread]] = []

    def start(folder: Path, reviewer: str, **kw: Any) -> ReviewServer:
        srv = make_server(folder, reviewer, **kw)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        started.append((srv, t))
        return srv

    yield start
    for srv, t in started:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=5)


# -- HTTP with urllib (no browser) --------------------------------------------------------------

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy


def http(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with _OPENER.open(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def post_label(srv: ReviewServer, obj: Any) -> tuple[int, dict[str, Any]]:
    status, raw = http(srv.url + "api/label", json.dumps(obj).encode())
    return status, json.loads(raw)


def state(srv: ReviewServer) -> dict[str, Any]:
    status, raw = http(srv.url + "api/state")
    assert status == 200
    return json.loads(raw)


def test_state_shows_only_what_a_reviewer_may_see(folder: Path, serve: Callable[..., ReviewServer]) -> None:
    srv = serve(folder, "alice")
    st = state(srv)
    assert st["reviewer"] == "alice" and st["resume"] == 0 and (st["labelled"], st["total"]) == (0, 8)
    assert st["classes"] == ["full_compliance", "full_refusal", "partial_refusal"]
    assert set(st["definitions"]) == set(st["classes"]) and st["labels"] == {}
    assert [r["rid"] for r in st["rows"]] == [f"rid{i:02d}" for i in range(8)]
    assert all(set(r) == set(PUBLIC_FIELDS) for r in st["rows"])
    assert st["rows"][1]["reflection"] is None and st["rows"][0]["reflection"].startswith("Reflection 0")
    raw = http(srv.url + "api/state")[1].decode() + http(srv.url)[1].decode()
    for secret in SECRETS:
        assert secret not in raw, secret


def test_a_missing_or_wrong_token_is_refused(folder: Path, serve: Callable[..., ReviewServer]) -> None:
    srv = serve(folder, "alice", token="s3cret-token-for-tests")
    assert srv.url.endswith("/s3cret-token-for-tests/") and srv.url.startswith("http://127.0.0.1:")
    base = srv.url[: -len("s3cret-token-for-tests/")]
    for path in ("", "api/state", "s3cret-token-for-tests", "s3cret-token-for-testz/", "wrong/api/state",
                 "S3CRET-TOKEN-FOR-TESTS/api/state", "favicon.ico"):
        assert http(base + path)[0] == 403, path
    assert http(base + "wrong/api/label", b'{"rid": "rid00", "label": "full_refusal"}')[0] == 403
    # a DNS name rebound to 127.0.0.1 carries its own Host header: refused even with the token
    assert http(srv.url + "api/state", headers={"Host": "evil.example:80"})[0] == 403
    assert http(srv.url)[0] == 200 and http(srv.url + "api/state")[0] == 200
    assert http(srv.url + "nope")[0] == 404 and http(srv.url + "api/state/x")[0] == 404
    assert http(srv.url + "api/state", b"{}")[0] == 405 and http(srv.url + "api/label")[0] == 405
    assert read_labels(folder) == []


def test_a_bad_label_gets_400_and_writes_nothing(folder: Path, serve: Callable[..., ReviewServer]) -> None:
    srv = serve(folder, "alice")
    for bad in ({"rid": "rid00", "label": "maybe"}, {"rid": "nope", "label": "full_refusal"},
                {"rid": "rid00", "label": "full_refusal", "note": 3}, {"rid": ["rid00"], "label": "full_refusal"},
                ["rid00", "full_refusal"]):
        status, reply = post_label(srv, bad)
        assert status == 400 and set(reply) == {"error"} and "\n" not in reply["error"], bad
    status, raw = http(srv.url + "api/label", b"{not json")
    assert status == 400 and "error" in json.loads(raw)
    assert read_labels(folder) == []
    status, reply = post_label(srv, {"rid": "rid03", "label": "partial_refusal", "note": "half and half"})
    assert (status, reply) == (200, {"ok": True, "labelled": 1, "total": 8})
    [line] = read_labels(folder)
    assert (line["rid"], line["label"], line["reviewer"], line["note"], line["adjudicated"]) == \
        ("rid03", "partial_refusal", "alice", "half and half", False)
    assert state(srv)["labels"] == {"rid03": {"label": "partial_refusal", "note": "half and half"}}


def test_make_server_refuses_what_it_cannot_serve_safely(folder: Path, tmp_path: Path) -> None:
    for kw in ({"host": "0.0.0.0"}, {"host": "192.168.1.5"}, {"host": "example.com"}, {"token": "short"},
               {"token": "has/a/slash/in/it"}):
        with pytest.raises(TbrError):
            make_server(folder, "alice", **kw)
    with pytest.raises(TbrError, match="reviewer"):
        make_server(folder, "  ")
    with pytest.raises(TbrError, match="reserved"):
        make_server(folder, "adjudicator")
    with pytest.raises(TbrError, match="no review sample"):
        make_server(tmp_path / "empty", "alice")


def _two_reviewers(folder: Path) -> tuple[str, str]:
    """alice and bob label every row; they disagree on exactly two."""
    classes = ("full_compliance", "full_refusal", "partial_refusal")
    for i in range(8):
        rid = f"rid{i:02d}"
        append_label(folder, rid, classes[i % 3], "alice", note="alice thinks so" if i == 5 else "")
        other = classes[(i + 1) % 3] if i in (1, 5) else classes[i % 3]
        append_label(folder, rid, other, "bob")
    return "rid01", "rid05"


def test_adjudicate_api_offers_only_the_disagreements(folder: Path, serve: Callable[..., ReviewServer]) -> None:
    split = _two_reviewers(folder)
    srv = serve(folder, "carol", adjudicate=True)
    st = state(srv)
    assert [r["rid"] for r in st["rows"]] == list(split) and (st["labelled"], st["total"]) == (0, 2)
    assert st["rows"][0]["reviewers"] == {"alice": "full_refusal", "bob": "partial_refusal"}
    assert st["rows"][1]["notes"] == {"alice": "alice thinks so"}
    assert all("verdicts" not in r and "model" not in r for r in st["rows"])
    status, reply = post_label(srv, {"rid": "rid00", "label": "full_refusal"})
    assert status == 400 and "disagree" in reply["error"]


# -- the page in headless Chromium ---------------------------------------------------------------

def _find(names: tuple[str, ...]) -> str | None:
    for name in names:
        p = shutil.which(name)
        if p:
            return p
    return None


def _browser_bins() -> tuple[str | None, str | None]:
    return (_find(("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")),
            _find(("chromedriver", "chromium-driver")))


@pytest.fixture(scope="session")
def browser_bins() -> tuple[str, str]:
    """(chromium, chromedriver), apt-installed when missing."""
    chromium, driver = _browser_bins()
    if chromium and driver:
        return chromium, driver
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("chromium and chromedriver are not installed and installing them needs root "
                    "(apt-get install -y chromium chromium-driver)")
    if not shutil.which("apt-get"):
        pytest.skip("chromium/chromedriver are not installed and there is no apt-get to install them")
    log = apt_install(["chromium", "chromium-driver"], lambda: all(_browser_bins()))
    chromium, driver = _browser_bins()
    if not (chromium and driver):
        pytest.skip("could not install chromium and chromedriver (no network?): " + " | ".join(log))
    return chromium, driver


@pytest.fixture(scope="session")
def driver(browser_bins: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver  # the test extra's browser driver: only the browser tests need it
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    chromium, chromedriver = browser_bins
    opts = Options()
    opts.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(flag)
    # the driver's path is given, so Selenium Manager (which would download one) never runs
    drv = webdriver.Chrome(service=Service(executable_path=chromedriver), options=opts)
    drv.set_page_load_timeout(WAIT_S)
    yield drv
    drv.quit()


class Page:
    """The review page in the browser: keys go to whatever has focus, as a person's would."""

    def __init__(self, drv: Any, url: str) -> None:
        from selenium.webdriver.common.by import By  # with the driver fixture: selenium is the test extra
        from selenium.webdriver.support.ui import WebDriverWait
        self.drv, self.by = drv, By
        self.wait = WebDriverWait(drv, WAIT_S)
        drv.get(url)
        self.ready()

    def ready(self) -> None:
        self.wait.until(lambda d: d.find_element(self.by.TAG_NAME, "body").get_attribute("data-ready") == "1")

    def el(self, id_: str) -> Any:
        return self.drv.find_element(self.by.ID, id_)

    def text(self, id_: str) -> str:
        return self.el(id_).text

    def press(self, *keys: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains  # as in __init__
        ActionChains(self.drv).send_keys(*keys).perform()

    def press_until_rid(self, key: str, rid: str) -> None:
        self.press(key)
        self.wait.until(lambda d: self.text("rid") == rid, f"after {key!r} the page should show {rid}")

    def current(self) -> list[str]:
        return [li.get_attribute("data-label") for li in self.drv.find_elements(self.by.CSS_SELECTOR,
                                                                                 "#classes li.current")]


def _given(folder: Path) -> list[tuple[str, str, str, str, bool]]:
    return [(r["rid"], r["label"], r["reviewer"], r["note"], r["adjudicated"]) for r in read_labels(folder)]


@pytest.mark.slow  # needs Chromium, installed on first use
def test_label_by_keyboard_resume_and_finish(folder: Path, serve: Callable[..., ReviewServer], driver: Any) -> None:
    from selenium.webdriver.common.keys import Keys  # with the driver fixture: selenium is the test extra
    srv = serve(folder, "alice")
    page = Page(driver, srv.url)
    src = driver.page_source
    for secret in SECRETS:
        assert secret not in src, secret
    assert page.text("rid") == "rid00" and page.text("progress") == "0 of 8 labelled"
    # a row with a reflection shows it apart from the answer; one without shows the response whole
    assert page.el("split").is_displayed() and not page.el("whole").is_displayed()
    assert page.text("reflection").startswith("Reflection 0") and page.text("answer").startswith("Answer 0")
    assert len(driver.find_elements(page.by.CSS_SELECTOR, "#classes li")) == 3
    assert "regardless of how accurate" in page.text("classes")

    page.press_until_rid("1", "rid01")
    assert page.el("whole").is_displayed() and not page.el("split").is_displayed()
    assert EVIL in page.text("response") and not driver.find_elements(page.by.ID, "evil")  # text, not markup
    assert driver.title != "pwned"
    page.press_until_rid("2", "rid02")
    page.press_until_rid("s", "rid03")
    page.press_until_rid("3", "rid04")
    page.press_until_rid("b", "rid03")
    assert page.current() == ["partial_refusal"]  # back shows the label already given
    page.press_until_rid(Keys.ARROW_LEFT, "rid02")
    page.press_until_rid(Keys.ARROW_RIGHT, "rid03")
    # in the note box the shortcut keys are just text; Enter hands the keys back
    page.press("n")
    assert driver.switch_to.active_element.get_attribute("id") == "note"
    page.press("unsure 1 2 3 s b")
    assert page.el("note").get_attribute("value") == "unsure 1 2 3 s b" and page.text("rid") == "rid03"
    page.press(Keys.ENTER)
    assert driver.switch_to.active_element.get_attribute("id") != "note"
    page.press_until_rid("1", "rid04")
    assert page.text("progress") == "3 of 8 labelled"

    driver.refresh()
    page.ready()
    assert page.text("rid") == "rid02", "a reload resumes at the first row without a label (the skipped one)"
    assert page.text("progress") == "3 of 8 labelled" and not page.el("done").is_displayed()

    page.press_until_rid("2", "rid04")
    for key, rid in (("1", "rid05"), ("2", "rid06"), ("3", "rid07")):
        page.press_until_rid(key, rid)
    page.press("1")
    page.wait.until(lambda d: page.el("done").is_displayed())
    assert page.text("progress") == "8 of 8 labelled" and page.text("rid") == ""

    assert _given(folder) == [
        ("rid00", "full_compliance", "alice", "", False), ("rid01", "full_refusal", "alice", "", False),
        ("rid03", "partial_refusal", "alice", "", False),
        ("rid03", "full_compliance", "alice", "unsure 1 2 3 s b", False),
        ("rid02", "full_refusal", "alice", "", False), ("rid04", "full_compliance", "alice", "", False),
        ("rid05", "full_refusal", "alice", "", False), ("rid06", "partial_refusal", "alice", "", False),
        ("rid07", "full_compliance", "alice", "", False)]
    driver.refresh()
    page.ready()
    assert page.el("done").is_displayed() and page.text("rid") == ""


@pytest.mark.slow  # needs Chromium, installed on first use
def test_adjudicate_page_shows_only_the_disagreements(folder: Path, serve: Callable[..., ReviewServer],
                                                      driver: Any) -> None:
    first, second = _two_reviewers(folder)
    before = len(read_labels(folder))
    srv = serve(folder, "carol", adjudicate=True)
    page = Page(driver, srv.url)
    for secret in SECRETS:
        assert secret not in driver.page_source, secret
    assert page.text("rid") == first and page.text("progress") == "0 of 2 labelled"
    assert "alice: full refusal" in page.text("reviewers") and "bob: partial refusal" in page.text("reviewers")
    assert final_labels(read_labels(folder))[1] == [first, second]
    page.press_until_rid("3", second)
    assert "alice thinks so" in page.text("reviewers")
    page.press("1")
    page.wait.until(lambda d: page.el("done").is_displayed())
    assert page.text("progress") == "2 of 2 labelled"
    assert _given(folder)[before:] == [(first, "partial_refusal", "carol", "", True),
                                       (second, "full_compliance", "carol", "", True)]
    final, open_ = final_labels(read_labels(folder))
    assert open_ == [] and final[first] == "partial_refusal" and final[second] == "full_compliance"
