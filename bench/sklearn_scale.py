#!/usr/bin/env python3
"""scikit-learn on the same generated files as `cargo xtask bench`: load, fit, predict.

Usage: sklearn_scale.py DATA.csv   — prints one JSON object with the seconds of each phase."""
import json, sys, time

t = time.perf_counter()
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
imports = time.perf_counter() - t

t = time.perf_counter()
df = pd.read_csv(sys.argv[1])
load = time.perf_counter() - t
y = (df.pop("purchased") == "yes").astype(int).values
df = df.drop(columns=["customer_id"])
cat = ["region", "device", "newsletter"]
num = [c for c in df.columns if c not in cat]
pre = lambda: ColumnTransformer([("num", StandardScaler(), num),
                                 ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), cat)])
out = {"rows": len(df), "imports_s": imports, "load_s": load}
for name, model in [("logistic", LogisticRegression(max_iter=500)),
                    ("hist_gb", HistGradientBoostingClassifier(max_iter=300, learning_rate=0.03, max_leaf_nodes=8,
                                                               min_samples_leaf=30, early_stopping=False, random_state=0))]:
    m = make_pipeline(pre(), model)
    t = time.perf_counter(); m.fit(df, y); out[f"{name}_fit_s"] = time.perf_counter() - t
    t = time.perf_counter(); m.predict_proba(df); out[f"{name}_predict_s"] = time.perf_counter() - t
print(json.dumps(out))
