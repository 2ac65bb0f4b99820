#!/usr/bin/env python3
"""XGBoost trained on a Dask cluster, its model saved in XGBoost's JSON format for `mlgate import`.

Starts a real `dask.distributed.LocalCluster` (two worker processes, one thread each), spreads the
training CSV over them as a Dask DataFrame, trains with `xgboost.dask`, saves the booster with
`save_model("….json")` and closes the cluster. The columns' kinds come from the mlgate
configuration the model will be imported with: categorical columns become pandas categories
(their categories as the configuration lists them, else as the data holds them, sorted), booleans
1/0, numbers floats (a blank is missing). On a real cluster, pass its scheduler's address with
--scheduler instead of starting a local one; nothing else changes.

Usage: train.py --config pipeline.toml --data train.csv --out model.json [--scheduler tcp://HOST:8786]
"""
import argparse
import tomllib

import numpy as np
import pandas as pd
import dask.dataframe as dd
import xgboost
import xgboost.dask
from dask.distributed import Client, LocalCluster


def read(config_path, csv_path):
    """The features and the 0/1 label of a CSV, typed as the mlgate configuration says."""
    with open(config_path, "rb") as f:
        columns = tomllib.load(f)["schema"]["columns"]
    raw = pd.read_csv(csv_path, dtype=str, keep_default_na=False, na_values=[""])
    features, label = {}, None
    for c in columns:
        name, kind = c["name"], c["kind"]
        if kind in ("ignore", "id"):
            continue
        values = raw[name]
        if kind == "label":
            label = (values == c["positive"]).astype(np.int32)
        elif kind == "categorical":
            levels = c.get("levels") or sorted(values.dropna().unique().tolist())
            features[name] = pd.Categorical(values, categories=levels)
        elif kind == "boolean":
            truths = set(c.get("true", ["true"]))
            features[name] = np.where(values.isna(), np.nan, values.isin(truths).astype(np.float64))
        else:
            features[name] = pd.to_numeric(values).astype(np.float64)
    return pd.DataFrame(features), label


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="pipeline.toml")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", default="model.json")
    parser.add_argument("--scheduler", help="a running cluster's scheduler address")
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()

    x, y = read(args.config, args.data)
    if args.scheduler:
        cluster, client = None, Client(args.scheduler)
    else:
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=None, host="127.0.0.1")
        client = Client(cluster)
    try:
        workers = len(client.scheduler_info()["workers"])
        print(f"cluster: {workers} workers at {client.scheduler.address}", flush=True)
        # Two partitions of the frame: each worker holds and trains on its own share.
        dx = dd.from_pandas(x, npartitions=2)
        dy = dd.from_pandas(pd.Series(y, name="label"), npartitions=2)
        train = xgboost.dask.DaskDMatrix(client, dx, dy, enable_categorical=True)
        params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 4,
                  "learning_rate": 0.1, "eval_metric": "auc", "seed": 7}
        output = xgboost.dask.train(client, params, train, num_boost_round=args.rounds,
                                    evals=[(train, "train")], verbose_eval=False)
        booster = output["booster"]
        booster.save_model(args.out)
        auc = output["history"]["train"]["auc"][-1]
        print(f"trained {args.rounds} rounds on {len(x)} rows over {workers} workers "
              f"(training AUC {auc:.4f}); saved {args.out}", flush=True)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
            print("cluster closed", flush=True)


if __name__ == "__main__":
    main()
