"""`tbr review RUN_DIR` (or `--input judged.jsonl`): draw a stratified review sample, label it
(served page, terminal or an imported spreadsheet), and write what the review says: each
judge's accuracy on this run, review-corrected compliance rates and differences
(review/summary.json and .md; for a run, also metrics.json, report.md and report.html)."""
from __future__ import annotations

import argparse
import csv
import io
import os
import webbrowser
from pathlib import Path
from typing import Any

from tbr.errors import TbrError
from tbr.io import atomic_write_json, atomic_write_text, write_jsonl
from tbr.report.markdown import write_report
from tbr.report.review import review_markdown
from tbr.review import sample as S
from tbr.review.rows import input_rows, read_import, run_metrics, run_rows
from tbr.review.store import append_label, by_reviewer, disagreements, read_labels, read_sample, write_sample
from tbr.review.summary import summarize
from tbr.review.terminal import label_loop


def register(sub: Any) -> None:
    p = sub.add_parser("review", help="label a sample of a run's answers; judge accuracy and corrected rates",
                       description=__doc__)
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="a finished run folder")
    p.add_argument("--input", help="a judged JSONL instead of a run (id, prompt, response, label, prompt_label)")
    p.add_argument("--out", help="review folder for --input (default: <input's folder>/review)")
    p.add_argument("--n", type=int, default=S.DEFAULT_PER_STRATUM, help="rows per stratum (default 20)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--reviewer", default=os.environ.get("USER") or "reviewer", help="your name on the labels")
    p.add_argument("--serve", action="store_true", help="label in a local page (127.0.0.1, token in the URL)")
    p.add_argument("--port", type=int, default=0, help="--serve: port (default: a free one)")
    p.add_argument("--no-browser", action="store_true", help="--serve: print the URL, do not open a browser")
    p.add_argument("--terminal", action="store_true", help="label in the terminal")
    p.add_argument("--adjudicate", action="store_true", help="walk the reviewers' disagreements and decide them")
    p.add_argument("--import", dest="import_file", metavar="FILE",
                   help="labels from a CSV or JSONL with id, label, optional reviewer and note")
    p.add_argument("--export", metavar="FILE",
                   help="write the sample for a spreadsheet (id, prompt, reflection, answer, response; no verdicts)")
    p.set_defaults(func=run)


def _source(args: argparse.Namespace) -> tuple[Path, list[dict[str, Any]], str, list[tuple[str, str]], Path | None]:
    """(review folder, rows, primary judge, model pairs to difference, run folder or None)."""
    if bool(args.run_dir) == bool(args.input):
        raise TbrError("tbr review needs a RUN_DIR or --input FILE (one of them)")
    if args.input:
        rows, primary = input_rows(Path(args.input))
        models = sorted({r["model"] for r in rows})
        pairs = [(a, b) for i, a in enumerate(models) for b in models[i + 1:]]
        return Path(args.out) if args.out else Path(args.input).parent / "review", rows, primary, pairs, None
    root = Path(args.run_dir)
    rows, primary = run_rows(root)
    m = run_metrics(root)
    pairs = sorted({(p["a"], p["b"]) for p in m.get("paired", []) if p.get("mode", "plain") == "plain"})
    return root / "review", rows, primary, pairs, root


def ensure_sample(folder: Path, rows: list[dict[str, Any]], primary: str, n: int, seed: int,
                  source: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The folder's sample; drawn now if there is none. Redrawing under labels is refused."""
    want = {"per_stratum": n, "seed": seed, "primary_judge": primary, "source": source}
    if (folder / "sample.json").is_file():
        meta, got = read_sample(folder)
        if all(meta.get(k) == v for k, v in want.items()):
            return meta, got
        if read_labels(folder):
            old = ", ".join(f"{k}={meta.get(k)}" for k in want)
            raise TbrError(f"the review here was drawn with {old} and already has labels; keep those options "
                           "(or move review/ away to start another review)", path=folder)
    picked, strata = S.draw(rows, primary, n, seed)
    meta = {**want, "rows": len(rows), "strata": strata}
    write_sample(folder, meta, picked)
    print(f"review sample: {len(picked)} of {len(rows)} rows from {len(strata)} strata -> {folder}")
    return meta, picked


def export(path: Path, rows: list[dict[str, Any]], folder: Path, adjudicate: bool = False) -> None:
    """The sample for a spreadsheet, without model names or verdicts; adjudicating, only the
    rows the reviewers disagree on, with each reviewer's label."""
    others: dict[str, dict[str, str]] = {}
    if adjudicate:
        labels = read_labels(folder)
        open_ = set(disagreements(labels))
        rows = [r for r in rows if r["rid"] in open_]
        for who, got in by_reviewer(labels).items():
            for rid_, lab in got.items():
                others.setdefault(rid_, {})[who] = lab
    blind = [{"id": r["rid"], "prompt": r["prompt"], "reflection": r.get("reflection") or "",
              "answer": r.get("answer") or "", "response": r["response"],
              **({"reviewers": "; ".join(f"{k}: {v}" for k, v in sorted(others.get(r["rid"], {}).items()))}
                 if adjudicate else {}),
              "label": "", "reviewer": "", "note": ""}
             for r in rows]
    if path.suffix.lower() == ".csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(blind[0]) if blind else ["id", "label"])
        w.writeheader()
        w.writerows(blind)
        atomic_write_text(path, buf.getvalue())
    else:
        write_jsonl(path, blind)
    print(f"exported {len(blind)} rows (no judge verdicts) -> {path}")


def import_labels(folder: Path, file: Path, rows: list[dict[str, Any]], reviewer: str,
                  adjudicate: bool = False) -> int:
    got = read_import(file, [r["rid"] for r in rows])  # every row checked before any is written
    for r in got:
        append_label(folder, r["rid"], r["label"], r["reviewer"] or reviewer, note=r["note"], adjudicated=adjudicate)
    print(f"imported {len(got)} {'adjudications' if adjudicate else 'labels'} from {file}")
    return len(got)


def serve(folder: Path, args: argparse.Namespace) -> None:
    from tbr.review.server import make_server  # http.server is only needed when serving
    srv = make_server(folder, args.reviewer, port=args.port, adjudicate=args.adjudicate)
    print(f"labelling page: {srv.url}  (Ctrl-C to stop; labels are saved as you give them)", flush=True)
    if not args.no_browser:
        webbrowser.open(srv.url)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()


def write_summary(folder: Path, meta: dict[str, Any], rows: list[dict[str, Any]],
                  pairs: list[tuple[str, str]]) -> dict[str, Any]:
    summ = summarize(meta, rows, read_labels(folder), pairs)
    atomic_write_json(folder / "summary.json", summ)
    atomic_write_text(folder / "summary.md", "\n".join(review_markdown(summ)))
    return summ


def run(args: argparse.Namespace) -> int:
    folder, rows, primary, pairs, root = _source(args)
    source = str(Path(args.input).resolve()) if args.input else "run"
    if args.n < 1:
        raise TbrError(f"--n must be at least 1, got {args.n}")
    meta, picked = ensure_sample(folder, rows, primary, args.n, args.seed, source)
    if args.export:
        export(Path(args.export), picked, folder, adjudicate=args.adjudicate)
    if args.import_file:
        import_labels(folder, Path(args.import_file), picked, args.reviewer, adjudicate=args.adjudicate)
    if args.serve:
        serve(folder, args)
    elif args.terminal or (args.adjudicate and not args.import_file and not args.export):
        label_loop(folder, picked, args.reviewer, adjudicate=args.adjudicate)
    summ = write_summary(folder, meta, picked, pairs)
    print(f"{summ['reviewed']} of {summ['sampled']} sampled rows have a final label "
          f"({summ['unresolved']} unresolved) -> {folder / 'summary.md'}")
    print(summ["verdict"])
    if root is not None:
        print(write_report(root))
    return 0
