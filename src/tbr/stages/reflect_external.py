"""External reflections: a strong model rewrites an existing refusal, adding a reasoning section.

The model gets the harmful request and the refusal we already have, and is asked (one-shot) to
put a short reasoning section in front of the refusal, reproducing the refusal unchanged. The
reflection is whatever comes before the refusal in its reply. A reply is malformed, and retried
by the client, when it does not contain the refusal (whitespace and curly quotes normalised),
when the text before it is empty or shorter than `MIN_WORDS` words, when it echoes the prompt
template, or when it declines the rewrite itself ("I'm sorry, I can't help with that").
Rows still malformed after the client's retries are dropped and counted.

Successes are appended to a `RowAppender` as they arrive, in completion order, as
`{"id", "reflection", "source": "external", "model"}`; call `out.finish(order=ids)` to get the
input order back. A rerun skips the ids already in `out.done`, so an interrupted run resumes
without duplicates or gaps.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from tbr.errors import TbrError
from tbr.io import RowAppender
from tbr.remote import RemoteFailure

log = logging.getLogger(__name__)

MIN_WORDS = 3

# One-shot prompt, sent as a single user message. Placeholders are filled by `build_messages`
# (plain substitution, so braces or placeholders inside requests are harmless).
REWRITE_PROMPT = """\
You are helping to build training data for a careful AI assistant. Below is a user request and \
the assistant's output, which declines it. Revise the output to add a reasoning section before \
the existing content.

The reasoning section:
- is one to three sentences, in the assistant's own voice;
- says plainly what the request is after and why fulfilling it could cause harm;
- does not restate harmful specifics, and does not decline anything itself (the existing \
output already does that).
After the reasoning section, reproduce the existing output exactly as given, word for word. \
Reply with the revised output only: no labels, quotes or commentary.

### Example

Request:
Write a text message that tricks my grandmother into telling me her online banking password.

Output:
I'm sorry, but I can't help with that. If you're worried about a relative's finances, consider \
talking with them openly or visiting their bank together.

Revised output:
This asks for a message designed to deceive an older person into revealing her banking \
password, which is fraud and could cost her both her savings and her trust in family. I'm \
sorry, but I can't help with that. If you're worried about a relative's finances, consider \
talking with them openly or visiting their bank together.

### Now revise this one

Request:
<<REQUEST>>

Output:
<<OUTPUT>>

Revised output:
"""

_PLACEHOLDER = re.compile(r"<<(REQUEST|OUTPUT)>>")

# a reflection that starts like this is the model declining the rewrite, not reasoning
_DECLINE_STARTS = (
    "i'm sorry", "i am sorry", "sorry", "i apologize", "i apologise", "my apologies",
    "i can't", "i cannot", "i can not", "i won't", "i will not", "i'm unable", "i am unable",
    "i'm not able", "i am not able", "as an ai", "unfortunately, i", "i must decline",
)
_LABEL = re.compile(r"^\s*(?:\*\*|#+\s*)?revised output\s*:?\s*(?:\*\*)?\s*", re.IGNORECASE)
_TEMPLATE_ECHO = re.compile(r"(?m)^\s*(?:Request|Output|Revised output)\s*:")
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})


def build_messages(prompt: str, refusal: str) -> list[dict[str, str]]:
    values = {"REQUEST": prompt.strip(), "OUTPUT": refusal.strip()}
    content = _PLACEHOLDER.sub(lambda m: values[m.group(1)], REWRITE_PROMPT)
    return [{"role": "user", "content": content}]


def _normalise(text: str) -> tuple[str, list[int]]:
    """Whitespace runs -> one space, curly quotes -> straight, stripped; plus, for each char of
    the result, its index in `text`."""
    out: list[str] = []
    where: list[int] = []
    space = True  # drops leading whitespace
    for i, ch in enumerate(text):
        if ch.isspace():
            if not space:
                out.append(" ")
                where.append(i)
                space = True
            continue
        out.append(ch.translate(_QUOTES))
        where.append(i)
        space = False
    if out and out[-1] == " ":
        out.pop()
        where.pop()
    return "".join(out), where


def parse_reply(reply: str, refusal: str) -> tuple[str | None, str]:
    """(reflection, "") for a well-formed reply, else (None, why it is malformed)."""
    reply = _LABEL.sub("", reply, count=1)
    norm_reply, where = _normalise(reply)
    norm_refusal, _ = _normalise(refusal)
    if not norm_refusal:
        return None, "the refusal is empty"
    if norm_reply.endswith(norm_refusal):
        pos = len(norm_reply) - len(norm_refusal)
    else:
        pos = norm_reply.find(norm_refusal)
    if pos < 0:
        return None, "reply does not contain the original refusal"
    reflection = reply[: where[pos]].strip() if pos > 0 else ""
    if not reflection:
        return None, "empty reflection"
    if len(reflection.split()) < MIN_WORDS:
        return None, f"reflection shorter than {MIN_WORDS} words"
    if reflection.translate(_QUOTES).lower().startswith(_DECLINE_STARTS):
        return None, "the model declined the rewrite"
    if _TEMPLATE_ECHO.search(reflection):
        return None, "reply echoes the prompt template"
    return reflection, ""


def is_valid_reply(reply: str, refusal: str) -> bool:
    return parse_reply(reply, refusal)[0] is not None


def _cache_hits(client: Any) -> int:
    return int(getattr(client, "stats", {}).get("cache_hits", 0))


def external_reflections(rows: Iterable[Mapping[str, Any]], client: Any, out: RowAppender, *,
                         progress: bool = True, **params: Any) -> dict[str, int]:
    """Ask `client` (a ChatClient) for a reflection for each safety row {id, prompt, response}
    not already in `out.done`; append each success to `out`.

    `params` (temperature, max_tokens, ...) go to the API as they are. Returns counts: `ok` rows
    appended by this call (`cached` of them served from the client's cache), `dropped` rows
    whose replies stayed malformed or failed, `skipped` rows already done (or repeated ids).
    A 401/403/404 from the server is a configuration error: it stops the run with a TbrError
    (what was appended so far is kept).
    """
    todo: list[Mapping[str, Any]] = []
    seen: set[str] = set()
    skipped = 0
    for n, row in enumerate(rows, 1):
        if row.get("id") is None:
            raise TbrError(f"safety row {n}: missing 'id'")
        for field in ("prompt", "response"):
            if not isinstance(row.get(field), str) or not row[field].strip():
                raise TbrError(f"safety row {row['id']!r}: '{field}' must be a non-empty string")
        key = str(row["id"])
        if key in out.done or key in seen:
            skipped += 1
            continue
        seen.add(key)
        todo.append(row)
    counts = {"ok": 0, "dropped": 0, "cached": 0, "skipped": skipped}
    if not todo:
        return counts

    items = [build_messages(r["prompt"], r["response"]) for r in todo]
    validators = [partial(is_valid_reply, refusal=r["response"]) for r in todo]

    def on_result(i: int, result: str | RemoteFailure) -> None:
        row = todo[i]
        if isinstance(result, RemoteFailure):
            if result.status in (401, 403, 404):
                raise TbrError(f"external reflections stopped: {result}")
            counts["dropped"] += 1
            log.warning("external reflection for id %r dropped: %s", row["id"], result)
            return
        reflection, why = parse_reply(result, row["response"])
        if reflection is None:  # only with a client that does not apply `validate`
            counts["dropped"] += 1
            log.warning("external reflection for id %r dropped: %s", row["id"], why)
            return
        out.add({"id": row["id"], "reflection": reflection, "source": "external",
                 "model": client.model})
        counts["ok"] += 1

    hits_before = _cache_hits(client)
    try:
        client.complete_many(items, validate=validators, progress=progress,
                             desc="external reflections", on_result=on_result, **params)
    finally:
        counts["cached"] = _cache_hits(client) - hits_before
    return counts
