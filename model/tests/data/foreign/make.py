"""Writes the foreign-model fixtures of model/src/pipeline/import.rs's tests.

Run with the learners' virtual environment (`.ci/learners/bin/python make.py` from this folder);
made with lightgbm 4.7.0, xgboost 3.2.0, pandas 3.1.1, numpy 2.4.6. It writes:
- test.csv: rows drawn as the training rows are (a numeric column with blanks, one without
  blanks in training but with blanks here, an integer, a categorical column with blanks and a
  level never seen in training, a boolean, the label); the training rows are not kept;
- lightgbm.txt, xgboost.json: binary models trained on train.csv;
- expected.csv: the libraries' predict_proba on test.csv's rows, printed exactly;
- refused-*: models that import must refuse (multiclass, regression, linear trees, dart).
"""
import json

import lightgbm as lgb
import numpy as np
import pandas as pd
import xgboost as xgb

COLORS = ["red", "green", "blue", "violet", "amber", "teal", "plum", "sand"]


def frame(n, seed, test):
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3.0, 1.0, n)
    amount[rng.random(n) < 0.12] = np.nan
    score = rng.normal(0.0, 1.0, n)
    if test:
        score[rng.random(n) < 0.1] = np.nan
    visits = rng.integers(0, 20, n)
    color = rng.choice(COLORS, n).astype(object)
    color[rng.random(n) < 0.06] = None
    if test:
        color[rng.random(n) < 0.05] = "black"
    weekend = rng.random(n) < 0.3
    effect = {c: e for c, e in zip(COLORS, [1.2, -0.8, 0.3, 1.5, -1.1, 0.0, 0.7, -0.4])}
    z = (
        0.6 * np.nan_to_num(np.log1p(amount) - 3.0, nan=0.8)
        + 0.9 * np.nan_to_num(score)
        - 0.08 * visits
        + np.array([effect.get(c, 0.5) for c in color])
        + 0.4 * weekend
        + rng.normal(0.0, 0.7, n)
    )
    df = pd.DataFrame(
        {
            "amount": amount,
            "score": score,
            "visits": visits,
            "color": pd.Categorical(color, categories=COLORS),
            "weekend": weekend,
        }
    )
    label = z > 0.3
    return df, label, color


def write_csv(path, df, color, label):
    out = df.copy()
    out["color"] = color
    out["weekend"] = np.where(df["weekend"], "yes", "no")
    out["bought"] = np.where(label, "1", "0")
    out.to_csv(path, index=False, float_format="%.17g", na_rep="")


train, y, train_color = frame(2000, 1, False)
test, y_test, test_color = frame(300, 2, True)
write_csv("test.csv", test, test_color, y_test)
# The test frame with the training categories: the unseen level is missing, as mlgate reads
# it. (LightGBM makes it missing by itself; XGBoost 3.2, given a frame whose categories include
# it, refuses some unseen categories and reads others as a neighbouring known one.)
test = test.assign(color=pd.Categorical(test_color, categories=COLORS))

lgbm = lgb.LGBMClassifier(n_estimators=25, num_leaves=8, min_child_samples=10, cat_smooth=1.0,
                          min_data_per_group=5, learning_rate=0.2, verbose=-1)
lgbm.fit(train, y)
lgbm.booster_.save_model("lightgbm.txt")

xgbm = xgb.XGBClassifier(n_estimators=25, max_depth=3, learning_rate=0.2, tree_method="hist",
                         enable_categorical=True, max_cat_to_onehot=1)
xgbm.fit(train, y)
xgbm.save_model("xgboost.json")

expected = pd.DataFrame({
    "lightgbm": [repr(float(p)) for p in lgbm.predict_proba(test)[:, 1]],
    "xgboost": [repr(float(p)) for p in xgbm.predict_proba(test)[:, 1]],
})
expected.to_csv("expected.csv", index=False)

small = dict(n_estimators=2, verbose=-1, num_leaves=4)
three = np.where(y, 2, train["visits"].to_numpy() % 2)
lgb.LGBMClassifier(**small).fit(train, three).booster_.save_model("refused-multiclass.txt")
lgb.LGBMRegressor(**small).fit(train, train["visits"]).booster_.save_model("refused-regression.txt")
lgb.LGBMClassifier(linear_tree=True, **small).fit(train, y).booster_.save_model("refused-linear.txt")
xsmall = dict(n_estimators=2, max_depth=2, tree_method="hist", enable_categorical=True)
xgb.XGBClassifier(**xsmall).fit(train, three).save_model("refused-multiclass.json")
xgb.XGBRegressor(**xsmall).fit(train, train["visits"]).save_model("refused-regression.json")
xgb.XGBClassifier(booster="dart", **xsmall).fit(train, y).save_model("refused-dart.json")
print(lgb.__version__, xgb.__version__, pd.__version__, np.__version__)
