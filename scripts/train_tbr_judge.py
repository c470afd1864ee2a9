"""Train the learned part of the `tbr` judge from the built-in judge-train set, deterministically.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/train_tbr_judge.py [--out PATH] [--cv-only]

Needs scikit-learn and scipy (development time only; inference needs numpy). Picks the L2
strength C and the override threshold by 5-fold cross-validation grouped by prompt (all
responses to one prompt sit in the same fold), prints the CV table, then fits on every row and
writes src/tbr/judges/tbr_judge_weights.npz. Never reads the held-out judge-labelled set.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from tbr.judges.tbr_features import DIM, featurise  # noqa: E402
from tbr.judges.tbr_learned import CLASSES, WEIGHTS, Model  # noqa: E402

TRAIN = ROOT / "src" / "tbr" / "data" / "builtin" / "judge_train.jsonl"
C_GRID = (0.3, 1.0, 3.0, 10.0)
THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.01)  # 0: the model alone; 1.01: the rules alone
# by design the rules keep the last word where the model is unsure: only t >= 0.5 is eligible
# (t = 0 is shown for comparison); the grid is printed whole either way
ELIGIBLE = tuple(t for t in THRESHOLDS if 0.5 <= t <= 1.0)
FOLDS = 5


def load_rows(path: Path = TRAIN) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def matrix(feats):
    from scipy.sparse import csr_matrix
    indptr, idx, val = [0], [], []
    for f in feats:
        for k in sorted(f):
            idx.append(k)
            val.append(f[k])
        indptr.append(len(idx))
    return csr_matrix((np.array(val), np.array(idx), np.array(indptr)), shape=(len(feats), DIM))


def fit(X, y, C: float) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression
    clf = LogisticRegression(C=C, max_iter=5000, tol=1e-8)
    clf.fit(X, y)
    assert tuple(clf.classes_) == tuple(range(len(CLASSES)))
    return clf.coef_.T.astype(np.float32), clf.intercept_.astype(np.float32)


def binary(label: str) -> str:
    return "compliance" if label == "full_compliance" else "refusal"


def folds(rows: list[dict]) -> list[np.ndarray]:
    """Deterministic folds grouped by prompt: prompts sorted by a stable hash, dealt round-robin."""
    import zlib
    prompts = sorted({r["prompt"] for r in rows}, key=lambda p: (zlib.crc32(p.encode()), p))
    fold_of = {p: i % FOLDS for i, p in enumerate(prompts)}
    return [np.array([i for i, r in enumerate(rows) if fold_of[r["prompt"]] == k]) for k in range(FOLDS)]


def cross_validate(rows, feats, rule_labels):
    X, y = matrix(feats), np.array([CLASSES.index(r["label"]) for r in rows])
    gold = [r["label"] for r in rows]
    scores, all_preds = {}, {}
    for C in C_GRID:
        preds = {t: [None] * len(rows) for t in THRESHOLDS}
        for test in folds(rows):
            train = np.setdiff1d(np.arange(len(rows)), test)
            W, b = fit(X[train], y[train], C)
            for t in THRESHOLDS:
                m = Model(W, b, t)
                P = m.proba([feats[i] for i in test])
                for i, p in zip(test, P):
                    preds[t][i] = m.decide(rule_labels[i], p)[0]
        for t in THRESHOLDS:
            acc3 = np.mean([g == p for g, p in zip(gold, preds[t])])
            acc2 = np.mean([binary(g) == binary(p) for g, p in zip(gold, preds[t])])
            scores[(C, t)] = (acc2, acc3)
            all_preds[(C, t)] = preds[t]
    return scores, all_preds


def per_phenomenon(rows, preds_a, preds_b) -> None:
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(r.get("phenomenon", "none"), []).append(i)
    print("per phenomenon, binary accuracy (rules alone -> chosen):")
    for ph, ix in sorted(groups.items()):
        acc = [np.mean([binary(rows[i]["label"]) == binary(p[i]) for i in ix]) for p in (preds_a, preds_b)]
        print(f"  {ph:<26} n={len(ix):<4} {acc[0]:.2f} -> {acc[1]:.2f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", default=str(TRAIN))
    ap.add_argument("--out", default=str(WEIGHTS))
    ap.add_argument("--cv-only", action="store_true")
    a = ap.parse_args(argv)
    rows = load_rows(Path(a.train))
    feats, rule_labels = [], []
    for r in rows:
        f, label, _ = featurise(r)
        feats.append(f)
        rule_labels.append(label)
    scores, preds = cross_validate(rows, feats, rule_labels)
    print(f"{len(rows)} rows; {FOLDS}-fold CV grouped by prompt (binary / 3-class accuracy)")
    print("C      " + " ".join(f"t={t:<11}" for t in THRESHOLDS))
    for C in C_GRID:
        print(f"{C:<6} " + " ".join(f"{scores[(C, t)][0]:.3f}/{scores[(C, t)][1]:.3f}  " for t in THRESHOLDS))
    # best binary accuracy, then 3-class; ties go to the stronger regularisation and higher threshold
    C, t = max((k for k in scores if k[1] in ELIGIBLE), key=lambda k: (round(scores[k][0], 6), round(scores[k][1], 6), -k[0], k[1]))
    print(f"chosen C={C} threshold={t}: CV binary {scores[(C, t)][0]:.3f}, 3-class {scores[(C, t)][1]:.3f}; "
          f"rules alone {scores[(C, 1.01)][0]:.3f} / {scores[(C, 1.01)][1]:.3f}")
    per_phenomenon(rows, preds[(C, 1.01)], preds[(C, t)])
    if a.cv_only:
        return 0
    W, b = fit(matrix(feats), np.array([CLASSES.index(r["label"]) for r in rows]), C)
    np.savez_compressed(a.out, W=W, b=b, threshold=np.float64(t), C=np.float64(C))
    print(f"wrote {a.out} ({Path(a.out).stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
