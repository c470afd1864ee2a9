"""report.html from a real tiny run, rendered in headless Chromium: the figures load, the
hash-driven filters select the right rows, untrusted model output stays text, and a screenshot
comes out. Chromium is Debian's package; the session fixture installs it when missing (CI runs
as root on a fresh machine) and skips with the reason when it cannot."""
from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from conftest import apt_install, tiny_overrides

pytestmark = pytest.mark.slow

GRID = ["build.gamma=[0,1]", "reflect.source=[builtin,shuffled]", "judge.primary=keywords",
        "attribute.enabled=true", "attribute.limit=1", "attribute.ig_steps=0"]
JUDGES = ["keywords", "xstest-prefix", "tbr"]


def _find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        p = shutil.which(name)
        if p:
            return p
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    found = _find_chromium()
    if found:
        return found
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("chromium is not installed and installing it needs root (apt-get install -y chromium)")
    if not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and there is no apt-get to install it")
    log = apt_install(["chromium"], lambda: _find_chromium() is not None)
    found = _find_chromium()
    if not found:
        pytest.skip("could not install chromium (no network?): " + " | ".join(log))
    return found


def run_chromium(binary: str, url: str, profile: Path, *extra: str, timeout: int = 60) -> str:
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
           "--hide-scrollbars", f"--user-data-dir={profile}", "--virtual-time-budget=5000", *extra, url]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


@pytest.fixture(scope="module")
def tiny_run(tiny_model: Path, tiny_data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tbr.config import load_config
    from tbr.pipeline import run
    runs = tmp_path_factory.mktemp("runs")
    return run(load_config(None, tiny_overrides(tiny_model, tiny_data, runs, name="grid") + GRID), progress=False)


def dom(chromium: str, page: Path, hash_: str, tmp_path: Path) -> str:
    return run_chromium(chromium, page.resolve().as_uri() + hash_, tmp_path / "profile", "--dump-dom")


def rows_in(d: str) -> int:
    body = re.search(r'<tbody id="rows"[^>]*>(.*?)</tbody>', d, re.S)
    assert body, "no prompt table in the DOM"
    return len(re.findall(r'<tr class="row"', body.group(1)))


def data_block(page: Path) -> dict:
    m = re.search(r'<script type="application/json" id="tbr-data">(.*?)</script>', page.read_text(), re.S)
    assert m
    return json.loads(m.group(1))


def judged(run: Path, label: str, judge: str = "keywords") -> list[dict]:
    p = run / "judge" / label / f"{judge}.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()]


def test_page_is_self_contained(tiny_run: Path) -> None:
    page = tiny_run / "report.html"
    assert page.is_file(), "tbr run writes report.html through report.write_report"
    text = page.read_text(encoding="utf-8")
    for sid in ("summary", "gamma", "sources", "compliance", "types", "attribution", "training", "reflections",
                "prompts"):
        assert f'id="{sid}"' in text, sid
    assert "http://" not in text and "https://" not in text, "nothing to fetch"
    assert not re.search(r'<(img|script|link)[^>]+(src|href)="(?!data:)', text)
    assert len(re.findall(r'<img src="data:image/png;base64,', text)) >= 7
    d = data_block(page)
    # reading order: untouched, then the baseline, then TBR cells by γ and name
    assert d["models"] == ["untouched", "baseline", "tbr-builtin", "tbr-shuffled"]
    assert len(d["rows"]) == 4 * 8 and set(d["judges"]) == set(JUDGES) and d["primary"] == "keywords"


def test_figures_load_and_filters_work(tiny_run: Path, chromium: str, tmp_path: Path) -> None:
    page = tiny_run / "report.html"
    d = dom(chromium, page, "", tmp_path)
    assert 'data-ready="1"' in d
    imgs = re.findall(r"<img\b[^>]*>", d)
    assert len(imgs) >= 7
    for tag in imgs:
        w = re.search(r'data-natural-width="(\d+)"', tag)
        assert w and int(w.group(1)) > 0, f"image did not load: {tag[:200]}"
    assert rows_in(d) == 32

    d = dom(chromium, page, "#model=baseline&plabel=safe", tmp_path)
    assert rows_in(d) == 4
    assert set(re.findall(r'<tr class="row" data-model="([^"]+)"', d)) == {"baseline"}
    assert 'data-matching="4"' in d
    # the select boxes show the filter taken from the address
    assert re.search(r'<select data-key="model">.*?</select>', d, re.S)

    # a judge-label filter: the count must equal the judge files' own count
    for lab in ("full_compliance", "full_refusal"):
        want = sum(r["label"] == lab for r in judged(tiny_run, "tbr-builtin"))
        d = dom(chromium, page, f"#model=tbr-builtin&label={lab}", tmp_path)
        assert rows_in(d) == want, lab
    want = sum(r["label"] == "unparsed" for m in ("untouched", "baseline", "tbr-builtin", "tbr-shuffled")
               for r in judged(tiny_run, m, "tbr"))
    d = dom(chromium, page, "#judge=tbr&label=unparsed", tmp_path)
    assert rows_in(d) == want

    d = dom(chromium, page, "#q=neighbour&plabel=unsafe", tmp_path)
    assert rows_in(d) == 4 * 4


def _evil_copy(tiny_run: Path, tmp_path: Path) -> Path:
    """A copy of the run whose responses and prompt types carry markup; its report.html."""
    from tbr.report.html import write_report_html
    run = tmp_path / "copy"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("model", "checkpoints", "*.safetensors"))
    evil = '</script><img src=x onerror="document.body.setAttribute(\'data-pwned\',1)"><b>bold</b>&amp;'
    for j in JUDGES:
        rows = judged(run, "baseline", j)
        rows[0]["response"] = evil
        (run / "judge" / "baseline" / f"{j}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ev = run / "data" / "eval.jsonl"
    prompts = [json.loads(x) for x in ev.read_text().splitlines()]
    prompts[0]["type"] = '<option selected>"x"</option><script>document.title="pwned"</script>'
    ev.write_text("".join(json.dumps(r) + "\n" for r in prompts))
    return write_report_html(run)


def test_untrusted_output_is_escaped_in_the_file(tiny_run: Path, tmp_path: Path) -> None:
    """The static half, with no browser: markup from model output never reaches the page raw."""
    text = _evil_copy(tiny_run, tmp_path).read_text()
    assert "</script><img" not in text and "<b>bold</b>" not in text and "<option selected>" not in text


def test_untrusted_output_stays_text(tiny_run: Path, chromium: str, tmp_path: Path) -> None:
    page = _evil_copy(tiny_run, tmp_path)
    d = dom(chromium, page, "#model=baseline", tmp_path)
    assert not re.search(r"<body[^>]*data-pwned", d) and "<title>pwned" not in d
    assert "&lt;/script&gt;&lt;img src=x" in d and "&lt;b&gt;bold&lt;/b&gt;&amp;amp;" in d
    assert not re.search(r'<img src="x"', d)


def test_screenshot(tiny_run: Path, chromium: str, tmp_path: Path) -> None:
    shot = tiny_run / "report_screenshot.png"
    run_chromium(chromium, (tiny_run / "report.html").resolve().as_uri(), tmp_path / "profile",
                 f"--screenshot={shot}", "--window-size=1280,2000")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    assert (w, h) == (1280, 2000)
    assert len(data) > 30_000, "a page with tables and plots, not a blank one"
    from PIL import Image
    with Image.open(shot) as im:
        colours = im.convert("RGB").getcolors(maxcolors=1_000_000)
        assert colours is None or len(colours) > 100
