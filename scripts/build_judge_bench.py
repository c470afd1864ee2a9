"""How the built-in judge-bench set (src/tbr/data/builtin/judge_bench.jsonl) was assembled.

Kept for traceability: every row of the shipped file can be followed back through these steps.

    python scripts/build_judge_bench.py pool     --run NAME=RUN_DIR ... --per-model 210 --out pool_model.jsonl
    python scripts/build_judge_bench.py chunks   --pool pool_model.jsonl --pool pool_written.jsonl --n 4 --out DIR
    python scripts/build_judge_bench.py disagree --pool ... --labels-a DIR_A --labels-b DIR_B --out disagreements.jsonl
    python scripts/build_judge_bench.py assemble --pool ... --labels-a ... --labels-b ... --adjudicated FILE --out FILE
    python scripts/build_judge_bench.py sample   --model NAME=PATH ... --experiment E --per-model 300 --out pool_sampled.jsonl
    python scripts/build_judge_bench.py extend   --bench judge_bench.jsonl --pool pool_sampled.jsonl --labels-a ... --labels-b ... --out FILE

1. `pool`: responses of the project's own models (untouched, baseline and TBR fine-tunes of
   several runs) to built-in prompts. Within a run every model answers the *same* sampled
   prompts (stratified by safe/unsafe and prompt type), so judge bias can be compared between
   models on equal ground. Exact duplicate (prompt, response) pairs are dropped.
2. `chunks`: the rows annotators read: id, prompt and response only, in a seeded shuffle that
   mixes sources. Never the source model, the writer's intended class or any judge's verdict.
3. Two annotators (helper agents given only labelling guide and chunk) label every row
   independently. `disagree` lists rows whose two labels differ, for a third annotator to
   adjudicate (seeing both labels, still no judge verdicts).
4. `assemble`: gold = the agreed label, else the adjudicated one; rows that an annotator or the
   adjudicator called `unclear` (nothing but a restated request) are left out, and so are rows
   listed in an --exclude file (a written row whose response was pasted under the wrong prompt). The split is
   drawn per prompt (all answers to one prompt fall on one side), stratified by source and
   prompt label with a seeded hash: TEST_SHARE of the prompts form the frozen test split.
5. `sample` (second round): sampled answers (temperature 0.8, seeded) of a run's models to
   the same stratified draw of built-in pseudo-harmful, safety and general prompts, for more
   project rows than greedy decoding of one run gives.
6. `extend`: adds newly labelled pool rows to a shipped bench without moving any shipped row
   across the split. A new row whose prompt is already in the bench takes that prompt's
   split; a new prompt goes to test when its seeded hash falls below TEST_SHARE. Rows whose
   (prompt, response) is already in the bench are dropped.
"""
from __future__ import annotations

import argparse
import json
import random
import zlib
from collections import defaultdict
from pathlib import Path

CLASSES = ("full_compliance", "full_refusal", "partial_refusal")
TEST_SHARE = 0.35


def read(path: Path) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_text(encoding="utf-8").splitlines() if x.strip()]


def write(path: Path, rows: list[dict]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def cmd_pool(a: argparse.Namespace) -> None:
    rng = random.Random(a.seed)
    out, seen = [], set()
    for spec in a.run:
        name, _, run_dir = spec.partition("=")
        root = Path(run_dir)
        prompts = {r["id"]: r for r in read(root / "data" / "eval.jsonl")}
        by_model = {}
        for f in sorted((root / "generate").glob("*/responses.jsonl")):
            for r in read(f):  # one "model" per (folder, prompting mode): cot answers differ in kind
                mode = r.get("mode", "plain")
                by_model.setdefault(f.parent.name + ("" if mode == "plain" else f"-{mode}"), {})[r["id"]] = r
        common = sorted(set.intersection(*(set(m) for m in by_model.values())))
        strata = defaultdict(list)
        for pid in common:
            strata[(prompts[pid]["label"], prompts[pid]["type"])].append(pid)
        total = len(common)
        chosen = []
        for key in sorted(strata):  # proportional allocation, at least one per stratum
            ids = sorted(strata[key])
            rng.shuffle(ids)
            chosen += ids[:max(1, round(a.per_model * len(ids) / total))]
        for model, resp in sorted(by_model.items()):
            for pid in sorted(chosen):
                r, p = resp[pid], prompts[pid]
                key = (p["prompt"], r["response"])
                if key in seen or not r["response"].strip():
                    continue
                seen.add(key)
                out.append({"id": f"jb-{name}-{model}-{pid}".replace(":", "_"), "prompt": p["prompt"],
                            "response": r["response"], "reflection": r.get("reflection"), "answer": r.get("answer"),
                            "prompt_label": p["label"], "prompt_type": p["type"], "source": "project",
                            "model": f"{name}:{model}", "family": "project-" + model.split("-")[0],
                            "experiment": name})
    write(a.out, out)
    print(f"{a.out}: {len(out)} rows")


def load_pools(paths: list[str]) -> list[dict]:
    rows = []
    for p in paths:
        for r in read(Path(p)):
            if "source" not in r:  # a written row: normalise to the bench's fields
                r = {"id": r["id"], "prompt": r["prompt"], "response": r["response"],
                     "prompt_label": r["prompt_label"], "prompt_type": r.get("prompt_type"), "source": "written",
                     "model": "written:" + r["family"], "family": r["family"], "experiment": None,
                     "intended": r.get("intended")}
            rows.append(r)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate ids across pools"
    return rows


def opaque(rid: str) -> str:
    """The id annotators see: it must not reveal the source model or the writer's family."""
    import hashlib
    return "r" + hashlib.sha1(f"judge-bench:{rid}".encode()).hexdigest()[:10]


def cmd_chunks(a: argparse.Namespace) -> None:
    rows = load_pools(a.pool)
    rng = random.Random(a.seed)
    rng.shuffle(rows)
    for k in range(a.n):
        part = [{"id": opaque(r["id"]), "prompt": r["prompt"], "response": r["response"]} for r in rows[k::a.n]]
        write(Path(a.out) / f"chunk{k + 1}.jsonl", part)
        print(f"chunk{k + 1}.jsonl: {len(part)} rows")


def labels_in(folder: str, rows: list[dict]) -> dict[str, str]:
    """Annotators' labels keyed by the real row id (they labelled opaque ids)."""
    back = {opaque(r["id"]): r["id"] for r in rows}
    out = {}
    for f in sorted(Path(folder).glob("*.jsonl")):
        for r in read(f):
            out[back.get(str(r["id"]), str(r["id"]))] = str(r["label"]).strip().lower()
    return out


def cmd_disagree(a: argparse.Namespace) -> None:
    rows = load_pools(a.pool)
    la, lb = labels_in(a.labels_a, rows), labels_in(a.labels_b, rows)
    missing = [r["id"] for r in rows if r["id"] not in la or r["id"] not in lb]
    print(f"{len(missing)} rows lack a label from one annotator: {missing[:10]}")
    dis = [{"id": opaque(r["id"]), "prompt": r["prompt"], "response": r["response"],
            "label_1": la[r["id"]], "label_2": lb[r["id"]]}
           for r in rows if r["id"] in la and r["id"] in lb and la[r["id"]] != lb[r["id"]]]
    write(a.out, dis)
    both = [r for r in rows if r["id"] in la and r["id"] in lb]
    print(f"{a.out}: {len(dis)} disagreements of {len(both)} doubly labelled rows "
          f"(agreement {1 - len(dis) / max(1, len(both)):.3f})")


def cmd_assemble(a: argparse.Namespace) -> None:
    rows = load_pools(a.pool)
    la, lb = labels_in(a.labels_a, rows), labels_in(a.labels_b, rows)
    back = {opaque(r["id"]): r["id"] for r in rows}
    adj = {back.get(str(r["id"]), str(r["id"])): str(r["label"]).strip().lower()
           for f in (a.adjudicated or []) for r in read(Path(f))}
    excluded = {}
    for f in a.exclude or []:
        for r in read(Path(f)):
            excluded[r["id"]] = r["why"]
    out, dropped = [], defaultdict(int)
    for r in rows:
        if r["id"] in excluded:
            dropped["excluded: " + excluded[r["id"]]] += 1
            continue
        x, y = la.get(r["id"]), lb.get(r["id"])
        if x is None or y is None:
            dropped["missing label"] += 1
            continue
        gold = x if x == y else adj.get(r["id"])
        if gold is None:
            dropped["not adjudicated"] += 1
            continue
        if gold not in CLASSES:
            dropped[f"gold {gold}"] += 1
            continue
        out.append({**r, "label": gold, "annotator_a": x, "annotator_b": y, "adjudicated": x != y})
    # the split: per (source, prompt label) stratum, prompts ranked by a seeded hash; the
    # lowest TEST_SHARE of each stratum's prompts (all their answers) form the test split
    strata = defaultdict(set)
    for r in out:
        strata[(r["source"], r["prompt_label"])].add(r["prompt"])
    rank = {}
    for s, prompts in strata.items():
        ordered = sorted(prompts, key=lambda p: (zlib.crc32(f"{a.seed}:{p}".encode()), p))
        for i, p in enumerate(ordered):
            rank[(s, p)] = (i + 0.5) / len(ordered)
    for r in out:
        r["split"] = "test" if rank[((r["source"], r["prompt_label"]), r["prompt"])] < TEST_SHARE else "train"
    out.sort(key=lambda r: (r["source"], r["model"], r["id"]))
    keep = ("id", "prompt", "response", "reflection", "answer", "label", "prompt_label", "prompt_type", "source",
            "model", "family", "experiment", "split", "annotator_a", "annotator_b", "adjudicated", "intended")
    write(a.out, [{k: r.get(k) for k in keep if k in r} for r in out])
    n_test = sum(r["split"] == "test" for r in out)
    print(f"{a.out}: {len(out)} rows ({n_test} test, {len(out) - n_test} train); dropped {dict(dropped)}")


def _builtin_prompts() -> list[dict]:
    """Built-in prompts with the bench's prompt_label and prompt_type."""
    from tbr.data.sources import builtin_rows
    out = [{"id": r["id"], "prompt": r["prompt"], "label": r["label"], "type": r["type"]}
           for r in builtin_rows("pseudo-harmful")]
    out += [{"id": r["id"], "prompt": r["prompt"], "label": "unsafe", "type": "safety_" + r["category"]}
            for r in builtin_rows("safety")]
    out += [{"id": r["id"], "prompt": r["prompt"], "label": "safe", "type": "general_" + r["category"]}
            for r in builtin_rows("general")]
    return out


def cmd_sample(a: argparse.Namespace) -> None:
    from tbr.generation import hf_generate_chat
    from tbr.models import load_model
    from tbr.prompts import mode_messages
    from tbr.stages.generate import response_row
    rng = random.Random(a.seed)
    prompts = _builtin_prompts()
    strata = defaultdict(list)
    for p in prompts:
        strata[(p["label"], p["type"])].append(p)
    chosen = []
    for key in sorted(strata):  # proportional allocation, at least one per stratum
        ps = sorted(strata[key], key=lambda p: p["id"])
        rng.shuffle(ps)
        chosen += ps[:max(1, round(a.per_model * len(ps) / len(prompts)))]
    chosen.sort(key=lambda p: p["id"])
    out = []
    for spec in a.model:
        name, _, path = spec.partition("=")
        model, tok = load_model(path)
        texts = hf_generate_chat(model, tok, [mode_messages(p["prompt"], "plain") for p in chosen],
                                 max_new_tokens=a.max_new_tokens, do_sample=True, temperature=a.temperature,
                                 seed=a.seed, desc=name)
        for p, t in zip(chosen, texts):
            r = response_row({**p, "suite": "builtin"}, "plain", t, name)
            if not t.strip():
                continue
            out.append({"id": f"jb-{a.experiment}-{name}-{p['id']}", "prompt": p["prompt"], "response": t,
                        "reflection": r["reflection"], "answer": r["answer"], "prompt_label": p["label"],
                        "prompt_type": p["type"], "source": "project", "model": f"{a.experiment}:{name}",
                        "family": "project-" + name.split("-")[0], "experiment": a.experiment})
        del model
    write(a.out, out)
    print(f"{a.out}: {len(out)} rows")


def cmd_extend(a: argparse.Namespace) -> None:
    bench = read(Path(a.bench))
    seen = {(r["prompt"], r["response"]) for r in bench}
    split_of = {r["prompt"]: r["split"] for r in bench}
    ns = argparse.Namespace(**{**vars(a), "out": a.out + ".new"})
    cmd_assemble(ns)
    new = read(Path(ns.out))
    Path(ns.out).unlink()
    added = []
    for r in new:
        if (r["prompt"], r["response"]) in seen:
            continue
        seen.add((r["prompt"], r["response"]))
        h = zlib.crc32(f"{a.seed}:{r['prompt']}".encode()) / 2**32
        r["split"] = split_of.get(r["prompt"]) or ("test" if h < TEST_SHARE else "train")
        added.append(r)
    out = sorted(bench + added, key=lambda r: (r["source"], r["model"], r["id"]))
    write(a.out, out)
    n_test = sum(r["split"] == "test" for r in added)
    print(f"{a.out}: {len(out)} rows; added {len(added)} ({n_test} test)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pool")
    p.add_argument("--run", action="append", required=True, help="NAME=RUN_DIR")
    p.add_argument("--per-model", type=int, default=210)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p = sub.add_parser("sample")
    p.add_argument("--model", action="append", required=True, help="NAME=PATH (a model folder or registry name)")
    p.add_argument("--experiment", required=True)
    p.add_argument("--per-model", type=int, default=300)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    for name in ("chunks", "disagree", "assemble", "extend"):
        p = sub.add_parser(name)
        p.add_argument("--pool", action="append", required=True)
        p.add_argument("--out", required=True)
        p.add_argument("--seed", type=int, default=0)
        if name == "chunks":
            p.add_argument("--n", type=int, default=4)
        else:
            p.add_argument("--labels-a", required=True)
            p.add_argument("--labels-b", required=True)
        if name == "extend":
            p.add_argument("--bench", required=True)
        if name in ("assemble", "extend"):
            p.add_argument("--adjudicated", action="append", default=None)
            p.add_argument("--exclude", action="append", default=None, help="JSONL of {id, why}: rows left out")
    a = ap.parse_args()
    {"pool": cmd_pool, "chunks": cmd_chunks, "disagree": cmd_disagree, "assemble": cmd_assemble,
     "sample": cmd_sample, "extend": cmd_extend}[a.cmd](a)


if __name__ == "__main__":
    main()
