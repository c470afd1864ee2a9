"""Building blocks of report.html: escaping, tables, sections, figures as data URIs.

Model output is untrusted: every text goes through `esc`; `table` cells are trusted HTML
fragments, so escape before passing them in."""
from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tbr.errors import TbrError


def esc(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def json_for_script(data: Any) -> str:
    """JSON safe to place inside <script type="application/json">: no '</script>', no '<!--'."""
    s = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def img_tag(path: Path, alt: str, caption: str | None = None) -> str:
    b64 = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return (f'<figure><img src="data:image/png;base64,{b64}" alt="{esc(alt)}" '
            f'data-src-name="{esc(Path(path).name)}">{cap}</figure>')


def f3(x: Any) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def ci_span(ci: Sequence[float | None] | None) -> str:
    return "" if not ci or ci[0] is None else f' <span class="ci">[{ci[0]:.2f}, {ci[1]:.2f}]</span>'


def table(head: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """Cells are trusted HTML fragments: escape before passing them in."""
    h = "".join(f"<th>{c}</th>" for c in head)
    b = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{h}</tr></thead><tbody>{b}</tbody></table>'


def section(sid: str, title: str, body: str, note: str = "") -> str:
    n = f'<p class="note">{note}</p>' if note else ""
    return f'<section id="{esc(sid)}"><h2>{esc(title)}</h2>{n}{body}</section>'


def load_metrics(root: Path) -> dict[str, Any]:
    for p in (root / "metrics.json", root / "evaluate" / "metrics.json"):
        if p.is_file():
            return json.loads(p.read_text(encoding="utf-8"))
    raise TbrError("no metrics.json (nor evaluate/metrics.json): run the evaluate stage first", path=root)


def overall(m: Mapping[str, Any], lab: str, mode: str, pl: str, judge: str | None = None) -> dict | None:
    j = judge or m["primary_judge"]
    return (((m["models"].get(lab) or {}).get(mode) or {}).get(j) or {}).get("all", {}).get(pl, {}).get("overall")
