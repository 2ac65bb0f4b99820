#!/usr/bin/env python3
"""The scikit-learn pipeline equivalent to mlgate's gradient-boosting model of the Online
Shoppers data, saved as an MLflow model for `mlflow models serve` (cargo xtask bench).
Usage: mlflow_model.py TRAIN.csv MODEL_DIR"""
import shutil, sys
import pandas as pd
import mlflow.sklearn
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

path, out = sys.argv[1], sys.argv[2]
df = pd.read_csv(path)
y = df.pop("Revenue").astype(int).values
categorical = ["Month", "OperatingSystems", "Browser", "Region", "TrafficType", "VisitorType", "Weekend"]
numeric = [c for c in df.columns if c not in categorical]
pipeline = Pipeline([
    ("encode", ColumnTransformer([
        ("levels", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
        ("numbers", "passthrough", numeric),
    ])),
    ("model", HistGradientBoostingClassifier(max_iter=300, learning_rate=0.03, random_state=0)),
]).fit(df, y)
shutil.rmtree(out, ignore_errors=True)
signature = infer_signature(df.head(100), pipeline.predict_proba(df.head(100))[:, 1])
# The model is this script's own: its tree predictor is a type skops asks to be trusted by name.
mlflow.sklearn.save_model(
    pipeline, out, signature=signature, pyfunc_predict_fn="predict_proba",
    skops_trusted_types=["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"],
)
print(f"saved {out}")
