"""Fit the default `tbr` judge (tbr.judges.learned) on the TRAIN split of the built-in judge-bench set.

    OMP_NUM_THREADS=2 .venv/bin/python scripts/train_tbr_judge.py [--out PATH] [--cv-only] [--seed 0]

Deterministic: features are fp32 encoder embeddings, folds come from a seeded hash of the prompt,
and scikit-learn's lbfgs logistic regression has no randomness. Needs scikit-learn (installed with
the `test` extra); inference needs only numpy and the encoder.

What is chosen, and how (all by 5-fold cross-validation on the train split, grouped by prompt so
that answers to one prompt never sit on both sides of a fold):
- the L2 strength C and class weighting: best binary accuracy, then 3-class accuracy;
- whether the older judge-train set (templated, hand-written) is added to the training rows;
- the softmax temperature: minimum out-of-fold negative log-likelihood (calibration);
- the `uncertain` threshold: the highest top-probability cut that leaves at most
  MAX_UNCERTAIN of the out-of-fold rows undecided.
The frozen test split is never read here: measure the result with `tbr judge-eval`.

Why a linear head: non-linear heads on the same features were measured by the same 5-fold CV (train
split, 2,854 rows, feature version 3; linear C=0.01: binary 0.9471, 3-class 0.8963) and were not kept:
- scikit-learn MLP, one hidden layer of 64 or 256, L2 alpha 1-30, with and without judge-train:
  best binary 0.9485, 3-class 0.8973 (64, alpha 10, with judge-train): within a few rows of linear;
- RBF SVM, C 0.3-10, with and without judge-train: best binary 0.9513, 3-class 0.9022 (C=10): +0.4
  points (about 12 rows), for a weights file of thousands of support vectors and Platt scaling with
  its own internal CV. Not worth its cost; the errors left sit in the encoder's features, not the head.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from tbr.judges.learned import CLASSES, WEIGHTS, Model, decide, features, softmax  # noqa: E402

BUILTIN = ROOT / "src" / "tbr" / "data" / "builtin"
C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)
WEIGHTING = (None,)  # "balanced" was never better in a first CV pass and doubles the search
TEMPS = tuple(np.round(np.arange(0.5, 3.01, 0.05), 2))
THRESHOLDS = (0.5, 0.45, 0.4, 0.0)
MAX_UNCERTAIN = 0.02
FOLDS = 5


def load(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def folds(rows: list[dict], seed: int) -> np.ndarray:
    """Fold index per row, by a seeded hash of the prompt (grouped, stable across processes)."""
    return np.array([zlib.crc32(f"{seed}:{r['prompt']}".encode()) % FOLDS for r in rows])


def standardise(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = X.mean(0)
    sd = X.std(0)
    return mu, np.where(sd < 1e-6, 1.0, sd)


def fit(X: np.ndarray, y: np.ndarray, C: float, weighting: str | None) -> Model:
    from sklearn.linear_model import LogisticRegression
    mu, sd = standardise(X)
    clf = LogisticRegression(C=C, max_iter=5000, tol=1e-6, class_weight=weighting)
    clf.fit((X - mu) / sd, y)
    assert tuple(clf.classes_) == tuple(range(len(CLASSES)))
    return Model(clf.coef_.T.astype(np.float64), clf.intercept_.astype(np.float64), mu, sd, 1.0, 0.0)


def binary(labels) -> np.ndarray:
    return np.array([0 if CLASSES[k] == "full_compliance" else 1 for k in labels])


def cross_validate(Xb, yb, fb, Xe, ye, C, weighting, extra: bool) -> np.ndarray:
    """Out-of-fold logits on the bench train rows (extra rows only ever train)."""
    out = np.zeros((len(yb), len(CLASSES)))
    for k in range(FOLDS):
        tr, te = fb != k, fb == k
        X = np.vstack([Xb[tr], Xe]) if extra else Xb[tr]
        y = np.concatenate([yb[tr], ye]) if extra else yb[tr]
        out[te] = fit(X, y, C, weighting).logits(Xb[te])
    return out


def nll(logits: np.ndarray, y: np.ndarray, t: float) -> float:
    p = softmax(logits / t)
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())


def row_key(r: dict) -> str:
    return hashlib.sha1(json.dumps([r.get("prompt"), r.get("response"), r.get("answer"), r.get("reflection")],
                                   ensure_ascii=False).encode()).hexdigest()


def cached_features(rows: list[dict], cache: Path | None) -> np.ndarray:
    """features(rows), with a per-row cache on disk (the encoder is the slow part)."""
    if cache is None:
        return features(rows)
    f = cache / "judge-features.npz"
    store: dict[str, np.ndarray] = {}
    if f.exists():
        with np.load(f) as z:
            store = dict(zip(z["keys"].tolist(), z["X"]))
    keys = [row_key(r) for r in rows]
    todo = [i for i, k in enumerate(keys) if k not in store]
    if todo:
        X = features([rows[i] for i in todo])
        store.update({keys[i]: X[j] for j, i in enumerate(todo)})
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(f, keys=np.array(list(store)), X=np.stack(list(store.values())))
    return np.stack([store[k] for k in keys])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(WEIGHTS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cv-only", action="store_true")
    ap.add_argument("--cache", default=None, help="folder to cache feature rows in (reruns skip the encoder)")
    ap.add_argument("--precompute", action="append", default=[], metavar="JSONL",
                    help="only fill the cache with these rows' features, then exit")
    a = ap.parse_args(argv)
    cache = Path(a.cache) if a.cache else None
    if a.precompute:
        for p in a.precompute:
            print(p, cached_features(load(Path(p)), cache).shape)
        return 0
    bench = [r for r in load(BUILTIN / "judge_bench.jsonl") if r["split"] == "train"]
    extra = load(BUILTIN / "judge_train.jsonl")
    Xb, Xe = cached_features(bench, cache), cached_features(extra, cache)
    yb = np.array([CLASSES.index(r["label"]) for r in bench])
    ye = np.array([CLASSES.index(r["label"]) for r in extra])
    fb = folds(bench, a.seed)
    print(f"train split: {len(bench)} judge-bench rows (+ {len(extra)} judge-train rows as an option); "
          f"{FOLDS}-fold CV grouped by prompt; features {Xb.shape[1]}")
    results = {}
    for use_extra in (False, True):
        for weighting in WEIGHTING:
            for C in C_GRID:
                lg = cross_validate(Xb, yb, fb, Xe, ye, C, weighting, use_extra)
                pred = lg.argmax(1)
                acc3 = float((pred == yb).mean())
                acc2 = float((binary(pred) == binary(yb)).mean())
                results[(use_extra, weighting, C)] = (acc2, acc3, lg)
                print(f"  extra={use_extra!s:<5} weights={weighting or 'none':<8} C={C:<5} "
                      f"binary {acc2:.4f}  3-class {acc3:.4f}")
    best = max(results, key=lambda k: (round(results[k][0], 4), round(results[k][1], 4), -k[2]))
    use_extra, weighting, C = best
    acc2, acc3, lg = results[best]
    T = min(TEMPS, key=lambda t: nll(lg, yb, float(t)))
    p = softmax(lg / T)
    thr = 0.0
    for t in THRESHOLDS:
        if np.mean([decide(q, t) == "uncertain" for q in p]) <= MAX_UNCERTAIN:
            thr = t
            break
    lab = [decide(q, thr) for q in p]
    kept = [i for i, x in enumerate(lab) if x != "uncertain"]
    print(f"chosen: extra={use_extra} weights={weighting} C={C}; CV binary {acc2:.4f}, 3-class {acc3:.4f}; "
          f"temperature {T} (NLL {nll(lg, yb, 1.0):.4f} -> {nll(lg, yb, float(T)):.4f}); threshold {thr}: "
          f"{len(p) - len(kept)} uncertain of {len(p)}, 3-class accuracy on the rest "
          f"{np.mean([CLASSES.index(lab[i]) == yb[i] for i in kept]):.4f}")
    if a.cv_only:
        return 0
    X = np.vstack([Xb, Xe]) if use_extra else Xb
    y = np.concatenate([yb, ye]) if use_extra else yb
    m = fit(X, y, C, weighting)
    m = Model(m.W, m.b, m.mu, m.sd, float(T), float(thr))
    train_sha = hashlib.sha256((BUILTIN / "judge_bench.jsonl").read_bytes()).hexdigest()
    m.save(a.out, C=np.float64(C), seed=np.int64(a.seed), extra=np.int64(use_extra),
           balanced=np.int64(weighting == "balanced"), n_train=np.int64(len(y)), bench_sha256=np.str_(train_sha),
           cv_binary=np.float64(acc2), cv_three=np.float64(acc3))
    print(f"wrote {a.out} ({Path(a.out).stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
