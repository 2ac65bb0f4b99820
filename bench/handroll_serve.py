#!/usr/bin/env python3
"""The hand-rolled scoring service `cargo xtask bench` measures `serve` against: FastAPI,
numpy and a LightGBM model of the Online Shoppers data (the same training file, matched
trees: 300 rounds of 8 leaves, learning rate 0.03, as configs/online-shoppers.toml), written as
a competent engineer would — the body parsed once with the standard library's json, each record
turned into a row of floats by a per-column lookup, the batch scored in one numpy call on one
thread (uvicorn runs one worker per core), the answer written with json.dumps.

Training:  handroll_serve.py train TRAIN.csv MODEL.txt
Serving:   HANDROLL_MODEL=MODEL.txt uvicorn handroll_serve:app --workers N
           POST /predict {"records": [{column: value, ...}, ...]}
           -> {"predictions": [{"probability": p, "prediction": 0|1}, ...]}
"""
import json
import math
import os
import sys

import numpy as np

COLUMNS = [
    "Administrative", "Administrative_Duration", "Informational", "Informational_Duration",
    "ProductRelated", "ProductRelated_Duration", "BounceRates", "ExitRates", "PageValues",
    "SpecialDay", "Month", "OperatingSystems", "Browser", "Region", "TrafficType", "VisitorType",
    "Weekend",
]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "June", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
VISITORS = ["Returning_Visitor", "New_Visitor", "Other"]
# Level columns coded as small integers in the data: LightGBM reads them as categories.
CODED = ["OperatingSystems", "Browser", "Region", "TrafficType"]
CATEGORICAL = ["Month", "VisitorType"] + CODED


def number(v):
    return float(v)


def level(levels):
    index = {name: float(i) for i, name in enumerate(levels)}
    return lambda v: index.get(v, math.nan)


def boolean(v):
    return 1.0 if v in (True, "TRUE", "true") else 0.0


ENCODE = []
for c in COLUMNS:
    if c == "Month":
        ENCODE.append((c, level(MONTHS)))
    elif c == "VisitorType":
        ENCODE.append((c, level(VISITORS)))
    elif c == "Weekend":
        ENCODE.append((c, boolean))
    else:
        ENCODE.append((c, number))


def train(path, out):
    import lightgbm as lgb
    import pandas as pd

    df = pd.read_csv(path)
    y = df.pop("Revenue").astype(int).values
    X = np.array([[f(v) for (_, f), v in zip(ENCODE, row)] for row in df[COLUMNS].itertuples(index=False)])
    params = {
        "objective": "binary", "learning_rate": 0.03, "num_leaves": 8, "min_data_in_leaf": 30,
        "lambda_l2": 1.0, "bagging_fraction": 0.8, "bagging_freq": 1, "feature_fraction": 0.5,
        "max_bin": 255, "verbose": -1, "seed": 42, "num_threads": 1,
    }
    data = lgb.Dataset(X, y, feature_name=COLUMNS, categorical_feature=CATEGORICAL)
    booster = lgb.train(params, data, num_boost_round=300)
    booster.save_model(out)
    print(f"saved {out}")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "train":
        sys.exit(__doc__)
    train(sys.argv[2], sys.argv[3])
else:
    import lightgbm as lgb
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response

    booster = lgb.Booster(model_file=os.environ["HANDROLL_MODEL"])
    app = FastAPI()

    @app.get("/ping")
    async def ping():
        return Response(status_code=200)

    @app.post("/predict")
    async def predict(request: Request):
        try:
            records = json.loads(await request.body())["records"]
            X = np.array([[f(r[c]) for c, f in ENCODE] for r in records], dtype=np.float64)
        except (ValueError, KeyError, TypeError) as e:
            return JSONResponse({"error": f"bad request: {e!r}"}, status_code=422)
        p = booster.predict(X, num_threads=1)
        body = json.dumps({"predictions": [{"probability": float(x), "prediction": int(x >= 0.5)} for x in p]})
        return Response(body, media_type="application/json")
