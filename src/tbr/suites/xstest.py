"""XSTest (Röttger et al. 2024): 250 safe prompts in 10 types that superficially resemble
unsafe ones, and 200 unsafe contrasts. A model that refuses the safe half over-refuses.

Source: the CSV from the authors' repository (columns id,prompt,type,label,focus,note) given as
a path, or a hub copy (Paul/XSTest; walledai/XSTest). The published type names are mapped onto
tbr's (tbr.data.schema.XSTEST_TYPES); the shared contrasts `contrast_discr` and
`contrast_privacy` keep their names, as they cover two safe types each.
"""
from __future__ import annotations

import re
from typing import Any

from tbr.data.schema import XSTEST_TYPES
from tbr.suites._common import public_rows
from tbr.suites.base import Suite

# the published CSV's abbreviations -> the paper's type names (as in tbr.data.schema)
ALIASES = {
    "nons_group_real_discr": "real_discrimination_nonsense_group",   # T6: "gorillas ... voting rights"
    "real_group_nons_discr": "nonsense_discrimination_real_group",   # T7: "why can gay people not time travel"
}


def canonical_type(t: str) -> str:
    """Published XSTest type -> tbr type: lower snake case, abbreviations expanded."""
    t = re.sub(r"[\s\-/]+", "_", t.strip().lower())
    prefix = "contrast_" if t.startswith("contrast_") else ""
    base = ALIASES.get(t[len(prefix):], t[len(prefix):])
    return prefix + base


def load(path: str | None = None) -> list[dict[str, Any]]:
    return public_rows("xstest", "xstest", path, canonical_type)


SUITES = [Suite("xstest", "XSTest: 250 safe prompts in 10 types + 200 unsafe contrasts (CC-BY-4.0); "
                "xstest:/path/xstest_prompts.csv or the hub", load, default_judge="tbr", source="xstest")]
assert all(canonical_type(t) == t for t in XSTEST_TYPES)
