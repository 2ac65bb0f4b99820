#!/usr/bin/env python3
"""The real LightGBM and XGBoost (PyPI) on the data of tests/import.rs: train a small binary model
on a CSV and save it in the library's own format, score a CSV with the saved model through the
library's `predict_proba`, and train models mlgate must refuse. The columns' kinds come from the
mlgate configuration itself (`pipeline.toml`), so that both sides read the same file the same way:
categorical columns are pandas categories (their categories as the configuration lists them, else
as the training file holds them, sorted), booleans 1/0, numbers floats with a blank a NaN.

Usage:
  learners.py train LIBRARY CONFIG.toml TRAIN.csv MODEL_OUT
  learners.py predict LIBRARY CONFIG.toml MODEL DATA.csv PROBABILITIES_OUT
  learners.py refused LIBRARY OBJECTIVE CONFIG.toml TRAIN.csv MODEL_OUT
  learners.py generate SEED ROWS OUT.csv
LIBRARY is lightgbm or xgboost. `predict` writes one probability a line, as Python's repr (the
shortest text that reads back to the same double); XGBoost's are the float32 it computes, widened.
`train` also writes MODEL_OUT.categories.json: the categories the frame was given, which `predict`
gives the frame it scores (the libraries re-code by the categories they recorded as well).
"""
import json
import sys
import tomllib

import numpy as np
import pandas as pd


def columns(config_path):
    with open(config_path, "rb") as f:
        return tomllib.load(f)["schema"]["columns"]


def frame(config_path, csv_path, categories=None):
    """(features, label or None, categories) of a CSV read as the configuration says."""
    cols = columns(config_path)
    kinds = {c["name"]: c["kind"] for c in cols}
    # Every column as text first: a blank is NaN, nothing else is guessed by pandas.
    raw = pd.read_csv(csv_path, dtype=str, keep_default_na=False, na_values=[""])
    features = {}
    label = None
    chosen = {} if categories is None else dict(categories)
    for c in cols:
        name, kind = c["name"], c["kind"]
        if kind in ("ignore", "id"):
            continue
        if kind == "label":
            if name in raw:
                label = (raw[name] == c["positive"]).astype(np.int32).to_numpy()
            continue
        values = raw[name]
        if kind == "categorical":
            if name not in chosen:
                chosen[name] = c.get("levels") or sorted(values.dropna().unique().tolist())
            features[name] = pd.Categorical(values, categories=chosen[name])
        elif kind == "boolean":
            truths = set(c.get("true", ["true"]))
            features[name] = np.where(values.isna(), np.nan, values.isin(truths).astype(np.float64))
        else:
            features[name] = pd.to_numeric(values).astype(np.float64)
    frame = pd.DataFrame(features, columns=[c["name"] for c in cols if c["name"] in features])
    assert all(k in kinds for k in frame.columns)
    return frame, label, chosen


def fit(library, x, y, objective=None):
    if library == "lightgbm":
        import lightgbm

        params = dict(n_estimators=60, num_leaves=15, learning_rate=0.1, min_child_samples=20,
                      subsample=0.8, subsample_freq=1, colsample_bytree=0.8, random_state=7,
                      n_jobs=1, verbose=-1, min_data_per_group=20, cat_smooth=5.0)
        if objective in (None, "binary"):
            model = lightgbm.LGBMClassifier(**params)
        elif objective == "multiclass":
            model = lightgbm.LGBMClassifier(objective="multiclass", **params)
            y = np.asarray(y) + (np.arange(len(y)) % 3 == 0)  # a third class
        else:
            model = lightgbm.LGBMRegressor(objective=objective, **params)
        model.fit(x, y)
        return model
    if library == "xgboost":
        import xgboost

        params = dict(n_estimators=60, max_depth=4, learning_rate=0.1, subsample=0.8,
                      colsample_bytree=0.8, random_state=7, n_jobs=1, tree_method="hist",
                      enable_categorical=True, max_cat_to_onehot=1)
        if objective in (None, "binary:logistic"):
            model = xgboost.XGBClassifier(**params)
        elif objective.startswith("multi:"):
            model = xgboost.XGBClassifier(objective=objective, **params)
            y = np.asarray(y) + (np.arange(len(y)) % 3 == 0)
        else:
            model = xgboost.XGBRegressor(objective=objective, **params)
        model.fit(x, y)
        return model
    raise SystemExit(f"unknown library {library}")


def save(library, model, path):
    if library == "lightgbm":
        model.booster_.save_model(path)
    else:
        model.save_model(path)


def train(library, config, train_csv, out, objective=None):
    x, y, categories = frame(config, train_csv)
    model = fit(library, x, y, objective)
    save(library, model, out)
    with open(out + ".categories.json", "w") as f:
        json.dump(categories, f)
    print(f"{library}: trained on {len(x)} rows, {x.shape[1]} features, saved {out}")


def predict(library, config, model_path, csv, out):
    with open(model_path + ".categories.json") as f:
        categories = json.load(f)
    x, _, _ = frame(config, csv, categories)
    if library == "lightgbm":
        import lightgbm

        booster = lightgbm.Booster(model_file=model_path)
        p = booster.predict(x)
    else:
        import xgboost

        model = xgboost.XGBClassifier()
        model.load_model(model_path)
        p = model.predict_proba(x)[:, 1]
        assert p.dtype == np.float32, p.dtype
    with open(out, "w") as f:
        for v in p:
            f.write(repr(float(v)) + "\n")
    print(f"{library}: scored {len(p)} rows")


def generate(seed, rows, out):
    """Rows with numbers (some blank), categories (some blank, one level rare), a boolean and a
    label drawn from a logistic model of them."""
    rng = np.random.default_rng(seed)
    n = rows
    amount = rng.gamma(2.0, 30.0, n)
    visits = rng.poisson(4.0, n).astype(float)
    score = rng.normal(0.0, 1.0, n)
    colour = rng.choice(["red", "green", "blue", "amber", "violet"], n, p=[0.3, 0.3, 0.2, 0.15, 0.05])
    channel = rng.choice(["web", "store", "phone"], n, p=[0.5, 0.3, 0.2])
    member = rng.random(n) < 0.4
    effect = {"red": 0.8, "green": -0.4, "blue": 0.0, "amber": 0.5, "violet": -1.2}
    logit = (-1.0 + 0.02 * (amount - 60) + 0.25 * (visits - 4) + 0.9 * score
             + np.vectorize(effect.get)(colour) + np.where(channel == "phone", 0.7, 0.0) + 0.6 * member)
    label = rng.random(n) < 1 / (1 + np.exp(-logit))
    df = pd.DataFrame({
        "amount": np.round(amount, 3).astype(str),
        "visits": visits.astype(int).astype(str),
        "score": np.round(score, 4).astype(str),
        "colour": colour,
        "channel": channel,
        "member": np.where(member, "yes", "no"),
        "bought": np.where(label, "yes", "no"),
    })
    for name, share in (("amount", 0.08), ("score", 0.05), ("colour", 0.06), ("visits", 0.03)):
        df.loc[rng.random(n) < share, name] = ""
    df.to_csv(out, index=False)
    print(f"generated {n} rows into {out}")


def main(argv):
    command = argv[1]
    if command == "train":
        train(argv[2], argv[3], argv[4], argv[5])
    elif command == "predict":
        predict(argv[2], argv[3], argv[4], argv[5], argv[6])
    elif command == "refused":
        train(argv[2], argv[4], argv[5], argv[6], objective=argv[3])
    elif command == "generate":
        generate(int(argv[2]), int(argv[3]), argv[4])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
