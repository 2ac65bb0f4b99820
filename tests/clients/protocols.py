#!/usr/bin/env python3
"""The real clients of the protocols `mlgate serve` speaks, against a running server: MLflow's
ScoringServerClient (what `mlflow models predict` and spark_udf use against a scoring server,
posting mlflow's own `dataframe_split` serialisation of a pandas DataFrame) and tritonclient's
HTTP InferenceServerClient (Open Inference Protocol V2, binary tensor data and JSON). Each must
get the probabilities `/v1/predict` gave for the same rows, bit for bit (given as hexadecimal
bits in EXPECTED.json, with the decisions).
Usage: protocols.py HOST:PORT MODEL ROWS.csv EXPECTED.json; exits non-zero on any difference."""
import json
import struct
import sys

import numpy as np
import pandas as pd
import tritonclient.http as triton
from mlflow.pyfunc.scoring_server.client import ScoringServerClient
from mlflow.utils.proto_json_utils import dump_input_data

address, model, rows_path, expected_path = sys.argv[1:5]
host, port = address.rsplit(":", 1)
expected = json.load(open(expected_path))
bits = [int(b, 16) for b in expected["probability_bits"]]
decisions = expected["decisions"]
frame = pd.read_csv(rows_path)
n = len(frame)


def as_bits(values):
    return [struct.unpack("<Q", struct.pack("<d", float(v)))[0] for v in values]


def check(what, got, want):
    if list(got) != list(want):
        sys.exit(f"{what}: differs\n got  {list(got)[:5]}…\n want {list(want)[:5]}…")
    print(f"{what}: {len(got)} bit for bit" if want is bits else f"{what}: {len(got)} classes")


# MLflow: the scoring server's own client, unchanged.
client = ScoringServerClient(host, port)
client.wait_server_ready(timeout=30)
print("mlflow version route:", client.get_version())
features = frame.drop(columns=["purchased"])
answer = client.invoke(features)
check("mlflow ScoringServerClient", [int(c) for c in answer["predictions"]], decisions)
answer = client.invoke(features, params={"predict_method": "predict_proba"})
check("mlflow dataframe_split predict_proba", as_bits(p[1] for p in answer["predictions"]), bits)
# The body that client sent, as mlflow serialises it, is what the server read.
assert json.loads(dump_input_data(features))["dataframe_split"]["columns"] == list(features.columns)

# tritonclient: one tensor per column, typed as the model's metadata says.
t = triton.InferenceServerClient(url=address)
assert t.is_server_live() and t.is_server_ready() and t.is_model_ready(model)
metadata = t.get_model_metadata(model)
numpy_type = {"FP64": np.float64, "INT64": np.int64, "BOOL": np.bool_, "BYTES": np.object_}
for binary in (True, False):
    inputs = []
    for spec in metadata["inputs"]:
        column = frame[spec["name"]]
        if spec["datatype"] == "BOOL":
            values = (column == "yes").to_numpy()
        elif spec["datatype"] == "BYTES":
            values = column.astype(str).to_numpy(dtype=np.object_)
        else:
            values = column.to_numpy(dtype=numpy_type[spec["datatype"]])
        tensor = triton.InferInput(spec["name"], [n], spec["datatype"])
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)
    outputs = None if binary else [triton.InferRequestedOutput(o, binary_data=False) for o in ("probability", "prediction")]
    result = t.infer(model, inputs, request_id="client-1", outputs=outputs)
    assert result.get_response()["id"] == "client-1", result.get_response()
    probability = result.as_numpy("probability")
    assert probability.dtype == np.float64
    check(f"tritonclient {'binary' if binary else 'json'}", as_bits(probability), bits)
    check(f"tritonclient {'binary' if binary else 'json'} prediction", [int(d) for d in result.as_numpy("prediction")], decisions)
