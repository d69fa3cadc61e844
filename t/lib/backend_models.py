#!/usr/bin/python3
"""Test and benchmark models for the ml-guard backend (run with /usr/bin/python3).

    backend_models.py OUTDIR [NAME ...]

For each NAME (default: all) trains a scikit-learn model, writes OUTDIR/NAME.pkl,
exports OUTDIR/NAME.mlgf with scripts/export-sklearn-model, and writes
OUTDIR/NAME.cases.json: test rows (random rows, and rows whose features sit
exactly on split thresholds and one float32 step either side) with
scikit-learn's own predict / predict_proba outputs for them.
"""

import importlib.machinery
import importlib.util
import json
import os
import sys

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def exporter():
    path = os.path.join(ROOT, "scripts", "export-sklearn-model")
    loader = importlib.machinery.SourceFileLoader("export_sklearn_model", path)
    spec = importlib.util.spec_from_loader(loader.name, loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def fraud_data(n=20000, seed=7):
    from sklearn.datasets import make_classification
    return make_classification(n_samples=n, n_features=8, n_informative=6,
                               n_redundant=1, weights=[0.97], flip_y=0.01,
                               class_sep=0.8, random_state=seed)


def make(name):
    from sklearn import datasets
    from sklearn.ensemble import (ExtraTreesClassifier, ExtraTreesRegressor,
                                  RandomForestClassifier, RandomForestRegressor)
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    if name == "iris":
        X, y = datasets.load_iris(return_X_y=True)
        return RandomForestClassifier(n_estimators=100, random_state=42).fit(X, y), X
    if name == "fraud":
        X, y = fraud_data()
        m = RandomForestClassifier(n_estimators=100, max_depth=14, random_state=1)
        return m.fit(X, y), X
    if name == "regressor":
        X, y = datasets.make_regression(n_samples=1500, n_features=6, noise=5.0,
                                        random_state=3)
        m = RandomForestRegressor(n_estimators=40, max_depth=10, random_state=3)
        return m.fit(X, y), X
    if name == "extratrees":
        X, y = datasets.load_wine(return_X_y=True)
        names = np.array(["barolo", "grignolino", "barbera \"x\""])
        m = ExtraTreesClassifier(n_estimators=60, random_state=5)
        return m.fit(X, names[y]), X
    if name == "extraregressor":
        X, y = datasets.load_diabetes(return_X_y=True)
        m = ExtraTreesRegressor(n_estimators=30, max_depth=8, random_state=9)
        return m.fit(X, y), X
    if name == "tree":
        X, y = datasets.load_breast_cancer(return_X_y=True)
        return DecisionTreeClassifier(random_state=0).fit(X, y * 5 + 10), X
    if name == "treeregressor":
        X, y = datasets.make_friedman1(n_samples=800, random_state=4)
        return DecisionTreeRegressor(max_depth=12, random_state=0).fit(X, y), X
    raise SystemExit("unknown model %s" % name)


ALL = ["iris", "fraud", "regressor", "extratrees", "extraregressor", "tree",
       "treeregressor"]


def threshold_rows(model, X, rng, count):
    """Rows with one feature on a split threshold (as float32, as sklearn
    compares it) and one float32 step below / above."""
    trees = getattr(model, "estimators_", [model])
    rows = []
    rounded_up = 0
    while len(rows) < count:
        t = trees[rng.integers(len(trees))].tree_
        internal = np.flatnonzero(t.children_left != -1)
        if len(internal) == 0:
            break
        node = internal[rng.integers(len(internal))]
        f, thr = t.feature[node], t.threshold[node]
        base = X[rng.integers(len(X))].astype(np.float32)
        t32 = np.float32(thr)
        # here a plain float32 comparison with float32(thr) would go wrong
        rounded_up += float(t32) > thr
        for v in (t32, np.nextafter(t32, np.float32(-np.inf)),
                  np.nextafter(t32, np.float32(np.inf))):
            r = base.copy()
            r[f] = v
            rows.append(r)
    return np.array(rows[:count], dtype=np.float32), rounded_up


def cases(model, X, rng, n_random=300, n_threshold=300):
    lo, hi = X.min(axis=0), X.max(axis=0)
    span = hi - lo
    rand = rng.uniform(lo - 0.1 * span, hi + 0.1 * span,
                       size=(n_random, X.shape[1])).astype(np.float32)
    on_thr, rounded_up = threshold_rows(model, X, rng, n_threshold)
    rows = np.vstack([rand, X[:50].astype(np.float32), on_thr])
    X64 = rows.astype(np.float64)     # exactly the float32 values
    out = {"rows": X64.tolist(), "rounded_up": int(rounded_up)}
    pred = model.predict(X64)
    out["predict"] = pred.tolist()
    if hasattr(model, "predict_proba"):
        out["proba"] = model.predict_proba(X64).tolist()
        out["classes"] = model.classes_.tolist()
    return out


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    outdir = sys.argv[1]
    names = sys.argv[2:] or ALL
    os.makedirs(outdir, exist_ok=True)
    exp = exporter()
    import joblib
    for name in names:
        model, X = make(name)
        pkl = os.path.join(outdir, name + ".pkl")
        joblib.dump(model, pkl)
        with open(os.path.join(outdir, name + ".mlgf"), "wb") as f:
            f.write(exp.build(model))
        rng = np.random.default_rng(sum(map(ord, name)))
        with open(os.path.join(outdir, name + ".cases.json"), "w") as f:
            json.dump(cases(model, X, rng), f)


if __name__ == "__main__":
    main()
