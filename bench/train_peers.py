#!/usr/bin/env python3
"""The training peers of `cargo xtask bench` (xtask/src/bench_train.rs): LightGBM, XGBoost and
scikit-learn's HistGradientBoosting fitted on the same generated CSV as `mlgate build`, with the
hyper-parameters of the configuration's `[model.gradient_boosting]` matched where the library has
them, then predicting every training row. Also writes the Parquet copy of a CSV (pyarrow).

  train_peers.py fit LIBRARY CONFIG.toml DATA.csv
      pandas `read_csv` with each column's type from the configuration (categorical columns as
      pandas categories, booleans 1/0, numbers float64), the fit, `predict_proba` on the training
      rows. Prints one JSON object: the library's version, the rows, the seconds of each phase and
      the matched parameters.
  train_peers.py parquet DATA.csv OUT.parquet
      the Parquet copy of DATA.csv as pyarrow writes it by default (Snappy, row groups of pyarrow's
      default size), every column typed by pyarrow's CSV reader.
LIBRARY is lightgbm, xgboost or hist_gb. Every library uses every core (its default).
"""
import json
import sys
import time
import tomllib

import numpy as np
import pandas as pd


def config(path):
    with open(path, "rb") as f:
        c = tomllib.load(f)
    return c["schema"]["columns"], c["model"].get("gradient_boosting", {})


def frame(columns, csv):
    """(features, label) of a CSV read as the configuration types it."""
    dtype, usecols = {}, []
    for c in columns:
        if c["kind"] in ("ignore", "id"):
            continue
        usecols.append(c["name"])
        if c["kind"] in ("categorical", "label", "boolean"):
            levels = c.get("levels")
            dtype[c["name"]] = pd.CategoricalDtype(levels) if levels else "category"
        else:
            dtype[c["name"]] = np.float64
    raw = pd.read_csv(csv, usecols=usecols, dtype=dtype)
    label = None
    for c in columns:
        name = c["name"]
        if c["kind"] == "label":
            label = (raw.pop(name) == c["positive"]).to_numpy(np.int32)
        elif c["kind"] == "boolean":
            values = raw[name]
            truths = set(c.get("true", ["true"]))
            raw[name] = np.where(values.isna(), np.nan, values.isin(truths).astype(np.float64))
    return raw, label


def model(library, gb):
    """The library's classifier with `[model.gradient_boosting]`'s values (mlgate's defaults for
    the keys the file leaves out), and what was matched."""
    trees = gb.get("max_iter", 300)
    rate = gb.get("learning_rate", 0.05)
    leaves = gb.get("max_leaf_nodes", 15)
    min_leaf = gb.get("min_samples_leaf", 20)
    l2 = gb.get("l2_regularization", 1.0)
    bins = gb.get("max_bins", 255)
    subsample = gb.get("subsample", 1.0)
    colsample = gb.get("colsample", 1.0)
    matched = dict(trees=trees, learning_rate=rate, leaves=leaves, bins=bins, l2=l2)
    if library == "lightgbm":
        import lightgbm

        matched.update(min_leaf=min_leaf, subsample=subsample, colsample_per_tree=colsample)
        return lightgbm.LGBMClassifier(
            n_estimators=trees, learning_rate=rate, num_leaves=leaves, min_child_samples=min_leaf,
            reg_lambda=l2, max_bin=bins, subsample=subsample, subsample_freq=1 if subsample < 1 else 0,
            colsample_bytree=colsample, random_state=7, verbose=-1), lightgbm.__version__, matched
    if library == "xgboost":
        import xgboost

        # No least number of rows in a leaf (min_child_weight bounds the hessian's sum instead).
        matched.update(subsample=subsample, colsample_per_tree=colsample)
        return xgboost.XGBClassifier(
            n_estimators=trees, learning_rate=rate, max_leaves=leaves, max_depth=0, grow_policy="lossguide",
            reg_lambda=l2, max_bin=bins, subsample=subsample, colsample_bytree=colsample, tree_method="hist",
            enable_categorical=True, random_state=7), xgboost.__version__, matched
    if library == "hist_gb":
        import sklearn
        from sklearn.ensemble import HistGradientBoostingClassifier

        # No row subsampling; its max_features draws inputs per split, not per tree: left at 1.
        matched.update(min_leaf=min_leaf)
        return HistGradientBoostingClassifier(
            max_iter=trees, learning_rate=rate, max_leaf_nodes=leaves, min_samples_leaf=min_leaf,
            l2_regularization=l2, max_bins=bins, early_stopping=False, categorical_features="from_dtype",
            random_state=7), sklearn.__version__, matched
    raise SystemExit(f"unknown library {library!r}: lightgbm, xgboost or hist_gb")


def fit(library, config_path, csv):
    columns, gb = config(config_path)
    out = {"library": library}
    t = time.perf_counter()
    x, y = frame(columns, csv)
    out["load_s"] = time.perf_counter() - t
    classifier, version, matched = model(library, gb)
    t = time.perf_counter()
    classifier.fit(x, y)
    out["fit_s"] = time.perf_counter() - t
    t = time.perf_counter()
    p = classifier.predict_proba(x)[:, 1]
    out["predict_s"] = time.perf_counter() - t
    out.update(version=version, rows=len(x), matched=matched, mean_probability=float(np.mean(p)))
    print(json.dumps(out))


def parquet(csv, out):
    import pyarrow.csv
    import pyarrow.parquet

    table = pyarrow.csv.read_csv(csv)
    pyarrow.parquet.write_table(table, out)
    print(json.dumps({"rows": table.num_rows, "row_groups": pyarrow.parquet.ParquetFile(out).num_row_groups}))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "fit":
        fit(*sys.argv[2:])
    elif len(sys.argv) == 4 and sys.argv[1] == "parquet":
        parquet(*sys.argv[2:])
    else:
        raise SystemExit(__doc__)
