"""Published jailbreak sets, read at run time from a file in their published layout (no copy ships).

- `jailbreakbench:PATH`: a JailbreakBench attack artifact (the JSON of the JailbreakBench/artifacts
  repository, `attack-artifacts/<method>/<black_box|white_box>/<model>.json`): its `jailbreaks`
  list, each with `index`, `goal`, `category` and the attack's `prompt` (null where the attack
  produced none: left out). Every prompt is harmful (label unsafe), type = its category.
- `wildjailbreak:PATH`: WildJailbreak's evaluation file (`eval/eval.tsv` of allenai/wildjailbreak,
  gated on the hub, so give the downloaded file): columns `adversarial` and `data_type`
  (adversarial_harmful -> unsafe, adversarial_benign -> safe; its benign half measures
  over-refusal under adversarial wording), type = the data type.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from tbr.errors import TbrError
from tbr.suites.base import Suite


def _path(suite: str, path: str | None) -> Path:
    if not path:
        raise TbrError(f"suite {suite!r} reads a local file: give it as {suite}:/path/to/file")
    p = Path(path).expanduser()
    if not p.is_file():
        raise TbrError("no such file", path=p)
    return p


def load_jailbreakbench(path: str | None = None) -> list[dict[str, Any]]:
    p = _path("jailbreakbench", path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise TbrError(f"not valid JSON ({e})", path=p) from None
    jbs = data.get("jailbreaks") if isinstance(data, dict) else None
    if not isinstance(jbs, list):
        raise TbrError("expected a JailbreakBench artifact: an object with a 'jailbreaks' list", path=p)
    method = str((data.get("parameters") or {}).get("method") or "unknown")
    out = []
    for n, j in enumerate(jbs):
        if not isinstance(j, dict):
            raise TbrError(f"jailbreaks[{n}]: expected an object", path=p)
        prompt = j.get("prompt")
        if prompt is None:  # the attack found no prompt for this behaviour
            continue
        if not isinstance(prompt, str) or not prompt.strip():
            raise TbrError(f"jailbreaks[{n}].prompt: expected a string or null, got {prompt!r:.40}", path=p)
        out.append({"id": f"jailbreakbench:{j.get('index', n)}", "suite": "jailbreakbench", "prompt": prompt.strip(),
                    "label": "unsafe", "type": str(j.get("category") or "unspecified"), "focus": None,
                    "goal": j.get("goal"), "source_attack": method})
    return out


WJB_LABELS = {"adversarial_harmful": "unsafe", "adversarial_benign": "safe"}


def load_wildjailbreak(path: str | None = None) -> list[dict[str, Any]]:
    p = _path("wildjailbreak", path)
    with p.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t" if p.suffix == ".tsv" else ",")
        missing = {"adversarial", "data_type"} - set(reader.fieldnames or [])
        if missing:
            raise TbrError(f"column {sorted(missing)[0]!r} not found; columns are: "
                           f"{', '.join(reader.fieldnames or [])}", path=p)
        out = []
        for n, r in enumerate(reader, 2):  # line 1 is the header
            kind = (r.get("data_type") or "").strip()
            if kind not in WJB_LABELS:
                raise TbrError(f"expected adversarial_harmful or adversarial_benign, got {kind!r}", path=p, line=n,
                               field="data_type")
            prompt = (r.get("adversarial") or "").strip()
            if not prompt:
                raise TbrError("expected a non-empty prompt", path=p, line=n, field="adversarial")
            out.append({"id": f"wildjailbreak:{n - 1}", "suite": "wildjailbreak", "prompt": prompt,
                        "label": WJB_LABELS[kind], "type": kind, "focus": None})
    return out


SUITES = [
    Suite("jailbreakbench", "a JailbreakBench attack artifact JSON (jailbreakbench:/path/<model>.json): the attack's "
          "prompts for 100 harmful behaviours, label unsafe", load_jailbreakbench),
    Suite("wildjailbreak", "WildJailbreak's evaluation file (wildjailbreak:/path/eval.tsv): adversarial harmful "
          "(unsafe) and adversarial benign (safe) prompts", load_wildjailbreak),
]
