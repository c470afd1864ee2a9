"""The judge stage: every response gets a label from each configured judge.

<judge>.jsonl holds the response's fields plus label, judge and raw (what the judge saw or
said). The learned judge's shipped weights are part of the stage's fingerprint: new weights
rejudge every row.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tbr.config import JudgeConfig, to_dict
from tbr.errors import TbrError
from tbr.generation import make_local_generate_fn
from tbr.io import file_sha256, read_jsonl, write_jsonl
from tbr.judges import get_judge, learned
from tbr.labels import folder_name
from tbr.remote import ChatClient
from tbr.runs import fingerprint
from tbr.stages.context import Context
from tbr.stages.runner import run_stage

NAME = "judge"


def make_judge(name: str, jcfg: Any | None = None, cache_dir: Path | None = None) -> Any:
    if name in ("llm", "guard") and jcfg is not None:
        opts: dict[str, Any] = {}
        if jcfg.api_base:
            if not jcfg.api_model:
                raise TbrError(f"judge '{name}' with judge.api_base needs judge.api_model")
            opts["client"] = ChatClient(jcfg.api_base, jcfg.api_model, api_key_env=jcfg.api_key_env,
                                        cache_dir=cache_dir)
        elif jcfg.model:
            opts["generate_fn"] = make_local_generate_fn(jcfg.model)
        else:
            raise TbrError(f"judge '{name}' needs judge.model (a local model) or judge.api_base + judge.api_model")
        return get_judge(name, **opts)
    return get_judge(name)


def cut_before_answer(row: Mapping[str, Any]) -> bool:
    """A response that ran into its length budget inside or right after its reflection, with
    nothing after it: no judge can say what it would have answered. (An empty response is
    left to the judges: it is `unparsed`, a different failure.)"""
    return (bool(row.get("truncated")) and bool(str(row.get("reflection") or "").strip())
            and not str(row.get("answer") or "").strip())


def apply_judge(judge: Any, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Input rows with label, judge and raw added. A `label` already in a row (say, a gold
    label) is kept as `input_label` rather than silently overwritten. A response cut by its
    length budget before any answer is labelled `truncated` whatever the judge says: it is
    counted apart, like `unparsed`, never as a compliance or a refusal."""
    verdicts = judge.judge(rows)
    out = []
    for r, v in zip(rows, verdicts):
        row = dict(r)
        if "label" in row:
            row["input_label"] = row.pop("label")
        if cut_before_answer(row):
            row.update(label="truncated", judge=judge.name, raw=f"cut by the length budget before any answer "
                                                               f"(the judge said {v.label})")
        else:
            row.update(label=v.label, judge=judge.name, raw=v.raw)
        out.append(row)
    return out


def judge_responses(responses: list[dict[str, Any]], judges: Sequence[str], out_dir: Path,
                    jcfg: Any | None = None, cache_dir: Path | None = None) -> dict[str, Any]:
    counts: dict[str, Any] = {}
    for name in judges:
        judged = apply_judge(make_judge(name, jcfg, cache_dir), responses)
        write_jsonl(Path(out_dir) / f"{name}.jsonl", judged)
        c: dict[str, int] = {}
        for r in judged:
            c[r["label"]] = c.get(r["label"], 0) + 1
        counts[name] = c
    return counts


def weights_version(judges: Sequence[str]) -> str | None:
    """The learned judge's weights file hash, when the tbr judge is one of `judges`."""
    if "tbr" not in judges:
        return None
    # read through the module: tests point learned.WEIGHTS at other files
    return file_sha256(learned.WEIGHTS) if learned.WEIGHTS.exists() else None


def run(ctx: Context) -> None:
    """One folder per evaluated model, a labelled file per judge."""
    jc: JudgeConfig = ctx.cfg.judge
    weights = weights_version(jc.judges)  # hashed once per run, not once per model
    for sub in ctx.subjects():
        gdir = ctx.root / "generate" / folder_name(sub.label)
        gfp = ctx.generate_fps[sub.label]
        jfp = fingerprint("judge", to_dict(jc), gfp, weights)

        def do_judge(out: Path, gdir: Path = gdir) -> dict[str, Any]:
            return judge_responses(read_jsonl(gdir / "responses.jsonl"), jc.judges, out, jcfg=jc,
                                   cache_dir=ctx.api_cache)
        run_stage(ctx.root / NAME / folder_name(sub.label), stage=NAME, label=f"judge [{sub.label}]", fp=jfp,
                  config=to_dict(jc), inputs={"generate": gfp}, fn=do_judge,
                  outputs=[f"{j}.jsonl" for j in jc.judges], owner=sub.label)
        ctx.judge_fps[sub.label] = jfp
