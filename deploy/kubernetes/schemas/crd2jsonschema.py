"""The JSON schema of one version of a CustomResourceDefinition, for check-jsonschema.

    python3 crd2jsonschema.py CRD.yaml VERSION > KIND-VERSION.json

The CRD's openAPIV3Schema, made strict as the API server is with a structural schema: an object
that lists its properties accepts no other key (unless it says x-kubernetes-preserve-unknown-fields),
an int-or-string field takes either, and apiVersion and kind are the resource's own. A pattern
with Go's case-insensitive flag `(?i)`, which JSON schema's ECMA-262 regexes lack, has each
letter spelled in both cases instead. Needs PyYAML.
"""
import json
import sys

import yaml


def ecma(pattern):
    if "(?i)" not in pattern:
        return pattern
    out, escaped = [], False
    for c in pattern.replace("(?i)", ""):
        if escaped or not c.isalpha() or not c.isascii():
            out.append(c)
        else:
            out.append(f"[{c.lower()}{c.upper()}]")
        escaped = c == "\\" and not escaped
    return "".join(out)


def strict(node):
    if isinstance(node, list):
        return [strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict(v) for k, v in node.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if isinstance(out.get("pattern"), str):
        out["pattern"] = ecma(out["pattern"])
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    for key in [k for k in out if k.startswith("x-kubernetes-")]:
        del out[key]
    return out


def main(path, version):
    with open(path) as f:
        crd = yaml.safe_load(f)
    group = crd["spec"]["group"]
    kind = crd["spec"]["names"]["kind"]
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = strict(served["schema"]["openAPIV3Schema"])
    schema["properties"]["apiVersion"] = {"const": f"{group}/{version}"}
    schema["properties"]["kind"] = {"const": kind}
    schema["properties"]["metadata"] = {"type": "object"}
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    json.dump(schema, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
