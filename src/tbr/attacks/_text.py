"""What several attacks share: the request restated as a noun phrase, and a per-row random stream."""
from __future__ import annotations

import random
import re


def rng(seed: int, row_id: str, attack: str) -> random.Random:
    """One stream per (seed, row, attack): a row's wrapping does not depend on which other rows or
    attacks are in the run, so adding a suite never changes another prompt's text."""
    return random.Random(f"{seed}|{row_id}|{attack}")


def gist(prompt: str, words: int = 14) -> str:
    """The request as a short lower-case phrase for 'This query asks for <gist>': the first
    `words` words, trailing punctuation dropped."""
    text = re.sub(r"\s+", " ", prompt).strip().rstrip("?.!")
    # "How do I X" reads as "how to X" after "This query asks for"
    text = re.sub(r"^(?i:how (?:do|can|could|would|should|might) (?:i|you|we|one|someone))\s+", "how to ", text)
    parts = text.split(" ")
    out = " ".join(parts[:words]) + (" ..." if len(parts) > words else "")
    return out[:1].lower() + out[1:] if out else out
