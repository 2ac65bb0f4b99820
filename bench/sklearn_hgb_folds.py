#!/usr/bin/env python3
"""Mean ROC AUC of scikit-learn's HistGradientBoosting (native missing values) over the folds
that `cargo xtask cv --export DIR` wrote.

Usage: sklearn_hgb_folds.py DIR"""
import sys, numpy as np, pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
cat = ["Month", "OperatingSystems", "Browser", "Region", "TrafficType", "VisitorType", "Weekend"]
def load(p):
    df = pd.read_csv(p); y = (df.pop("Revenue").astype(str).str.upper() == "TRUE").astype(int).values
    for c in cat: df[c] = df[c].astype("category")
    return df, y
aucs = []
for k in range(5):
    Xtr, ytr = load(f"{sys.argv[1]}/train_{k}.csv"); Xte, yte = load(f"{sys.argv[1]}/test_{k}.csv")
    for c in cat: Xte[c] = pd.Categorical(Xte[c].where(Xte[c].isin(Xtr[c].cat.categories)), categories=Xtr[c].cat.categories)
    m = HistGradientBoostingClassifier(random_state=0, categorical_features="from_dtype").fit(Xtr, ytr)
    aucs.append(roc_auc_score(yte, m.predict_proba(Xte)[:, 1]))
print(f"{sys.argv[1]}: HistGradientBoosting ROC AUC {np.mean(aucs):.4f} ± {np.std(aucs, ddof=1):.4f}")
