#!/usr/bin/env python3
"""LightGBM and XGBoost for the imported-model section of `cargo xtask bench`.

  learners_predict.py train LIBRARY CONFIG.toml TRAIN.csv MODEL
      trains the library's classifier with its default size (100 trees; LightGBM 31 leaves,
      XGBoost depth 6) on TRAIN.csv typed as tests/clients/learners.py types it, and saves it in
      the library's format (with MODEL.categories.json).
  learners_predict.py predict LIBRARY CONFIG.toml MODEL DATA.csv OUT.csv THRESHOLD
      what a user of the library runs to score a CSV: pandas `read_csv` (categorical columns read
      straight as the model's categories, booleans as booleans), the library's own predict on
      every core, the decisions at THRESHOLD, the output CSV written by pandas. Prints one JSON
      object with the seconds of each phase.
"""
import json
import os
import sys
import time
import tomllib

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "clients"))


def train(library, config, train_csv, out):
    import learners

    x, y, categories = learners.frame(config, train_csv)
    if library == "lightgbm":
        import lightgbm

        model = lightgbm.LGBMClassifier(random_state=7, verbose=-1)
        model.fit(x, y)
        model.booster_.save_model(out)
    else:
        import xgboost

        model = xgboost.XGBClassifier(tree_method="hist", enable_categorical=True, random_state=7)
        model.fit(x, y)
        model.save_model(out)
    with open(out + ".categories.json", "w") as f:
        json.dump(categories, f)


def predict(library, config, model_path, csv, out, threshold):
    times = {}
    t = time.perf_counter()
    with open(config, "rb") as f:
        columns = tomllib.load(f)["schema"]["columns"]
    with open(model_path + ".categories.json") as f:
        categories = json.load(f)
    features = [c["name"] for c in columns if c["kind"] not in ("ignore", "id", "label")]
    dtypes, truths, falses = {}, [], []
    for c in columns:
        if c["kind"] == "categorical":
            dtypes[c["name"]] = pd.CategoricalDtype(categories[c["name"]])
        elif c["kind"] == "boolean":
            truths += c.get("true", [])
            falses += c.get("false", [])
    if library == "lightgbm":
        import lightgbm

        model = lightgbm.Booster(model_file=model_path)
    else:
        import xgboost

        model = xgboost.XGBClassifier()
        model.load_model(model_path)
    times["setup_s"] = time.perf_counter() - t

    t = time.perf_counter()
    x = pd.read_csv(csv, usecols=features, dtype=dtypes, true_values=truths, false_values=falses)[features]
    for c in columns:
        if c["kind"] == "boolean":
            x[c["name"]] = x[c["name"]].astype(np.float64)
    times["read_s"] = time.perf_counter() - t

    t = time.perf_counter()
    p = model.predict(x) if library == "lightgbm" else model.predict_proba(x)[:, 1]
    times["predict_s"] = time.perf_counter() - t

    t = time.perf_counter()
    pd.DataFrame({"probability": p, "prediction": (p >= threshold).astype(np.uint8)}).to_csv(out, index=False)
    times["write_s"] = time.perf_counter() - t
    times["rows"] = len(p)
    print(json.dumps(times))


if __name__ == "__main__":
    if sys.argv[1] == "train":
        train(*sys.argv[2:6])
    elif sys.argv[1] == "predict":
        predict(*sys.argv[2:7], float(sys.argv[7]))
    else:
        raise SystemExit(__doc__)
