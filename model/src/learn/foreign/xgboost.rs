//! XGBoost's JSON model (`save_model("model.json")`, XGBoost 1.6 and later) read into a
//! [`Booster`], with XGBoost's own prediction semantics (`src/predictor/predict_fn.h`,
//! `src/common/categorical.h`, `src/common/math.h`):
//!
//! - every input is cast to single precision, and a numerical split sends `x < condition` left,
//!   compared in single precision: here the condition becomes the double-precision bound of
//!   [`single_precision_bound`], so that `x <= bound` holds for exactly the same `x`;
//! - a missing value (NaN) goes the split's default way (`default_left`);
//! - a categorical split sends the categories it lists *right*, and every other code left
//!   (a negative code, or one at or past 2^24, too);
//! - the margin starts at the logit of `base_score` (`-ln(1/p - 1)`, in single precision) and
//!   adds each tree's leaf in single precision, in the trees' order; the probability is
//!   XGBoost's single-precision logistic function ([`Arithmetic::Single`]).
//!
//! Only `gbtree` boosters with the objective `binary:logistic` and one output are read;
//! `dart` (whose trees are weighted) and `gblinear` are refused.

use serde::Deserialize;
use serde_json::Value;

use super::{
    bounded, lay_out, level_text, single_precision_bound, Feature, FeatureKind, ForeignModel, Node, ReadError,
};
use crate::learn::gbdt::{Arithmetic, Booster, CategorySplit, MAX_CATEGORY_CODE};

/// Nodes a tree may have at most.
const MAX_NODES: usize = 1 << 22;

#[derive(Deserialize)]
struct File {
    learner: Learner,
    #[serde(default)]
    version: Vec<u64>,
}

#[derive(Deserialize)]
struct Learner {
    #[serde(default)]
    feature_names: Vec<String>,
    #[serde(default)]
    feature_types: Vec<String>,
    gradient_booster: GradientBooster,
    learner_model_param: ModelParam,
    objective: Objective,
}

#[derive(Deserialize)]
struct ModelParam {
    base_score: String,
    #[serde(default)]
    num_class: Option<String>,
    #[serde(default)]
    num_feature: Option<String>,
    #[serde(default)]
    num_target: Option<String>,
}

#[derive(Deserialize)]
struct Objective {
    name: String,
}

#[derive(Deserialize)]
struct GradientBooster {
    name: String,
    #[serde(default)]
    model: Option<Value>,
}

#[derive(Deserialize)]
struct GbTree {
    trees: Vec<JsonTree>,
    #[serde(default)]
    cats: Option<Categories>,
}

/// The category dictionaries XGBoost 3.1 and later record: per feature, its categories in the
/// order of their codes (strings as UTF-8 bytes cut at `offsets`, or numbers).
#[derive(Deserialize)]
struct Categories {
    #[serde(default)]
    enc: Vec<Encoding>,
}

#[derive(Deserialize)]
struct Encoding {
    #[serde(default)]
    offsets: Vec<usize>,
    #[serde(default)]
    values: Vec<Value>,
}

#[derive(Deserialize)]
struct JsonTree {
    left_children: Vec<i64>,
    right_children: Vec<i64>,
    split_indices: Vec<i64>,
    split_conditions: Vec<f64>,
    default_left: Vec<Value>,
    #[serde(default)]
    split_type: Vec<i64>,
    #[serde(default)]
    categories: Vec<i64>,
    #[serde(default)]
    categories_nodes: Vec<i64>,
    #[serde(default)]
    categories_segments: Vec<i64>,
    #[serde(default)]
    categories_sizes: Vec<i64>,
}

fn malformed(message: String) -> ReadError {
    ReadError::Malformed(message)
}

/// Reads an XGBoost JSON model.
pub fn read(bytes: &[u8]) -> Result<ForeignModel, ReadError> {
    let file: File = serde_json::from_slice(bytes)
        .map_err(|e| malformed(format!("not an XGBoost JSON model ({})", bounded(&e.to_string()))))?;
    let learner = file.learner;
    let version =
        (!file.version.is_empty()).then(|| file.version.iter().map(u64::to_string).collect::<Vec<_>>().join("."));
    let objective = learner.objective.name;
    let param = learner.learner_model_param;
    let num_class = param.num_class.as_deref().unwrap_or("0");
    let num_target = param.num_target.as_deref().unwrap_or("1");
    if objective != "binary:logistic" || !matches!(num_class, "0" | "1") || num_target != "1" {
        return Err(ReadError::Unsupported(format!(
            "the objective `{}` with num_class {} and num_target {}: only binary logistic models (objective \
             `binary:logistic`) are imported",
            bounded(&objective),
            bounded(num_class),
            bounded(num_target)
        )));
    }
    let booster_name = learner.gradient_booster.name;
    if booster_name != "gbtree" {
        return Err(ReadError::Unsupported(format!(
            "the booster `{}`: only `gbtree` boosters are imported (`dart` weighs its trees, `gblinear` has none)",
            bounded(&booster_name)
        )));
    }
    let model: GbTree = serde_json::from_value(learner.gradient_booster.model.unwrap_or(Value::Null))
        .map_err(|e| malformed(format!("the gbtree model: {}", bounded(&e.to_string()))))?;

    let count = match param.num_feature.as_deref().map(str::parse::<usize>) {
        Some(Ok(n)) => n,
        Some(Err(_)) => return Err(malformed("`num_feature` is not a number".into())),
        None => learner.feature_names.len(),
    };
    if learner.feature_names.len() != count {
        return Err(ReadError::Unsupported(format!(
            "the model names {} of its {count} features: import needs every feature's name (train on a data \
             frame, or set `feature_names`)",
            learner.feature_names.len()
        )));
    }
    let encodings = model.cats.map(|c| c.enc).unwrap_or_default();
    let mut features = Vec::with_capacity(count);
    for (i, name) in learner.feature_names.iter().enumerate() {
        let categorical = learner.feature_types.get(i).is_some_and(|t| t == "c");
        let kind = if categorical {
            FeatureKind::Category { levels: encodings.get(i).map(levels).transpose()?.flatten() }
        } else {
            FeatureKind::Number
        };
        features.push(Feature { name: name.clone(), kind });
    }

    let base = base_score(&param.base_score)?;
    // XGBoost's ProbToMargin for the logistic loss, in single precision.
    let margin = -(1.0f32 / base - 1.0).ln();
    let mut booster =
        Booster { base_score: f64::from(margin), n_inputs: count, trees: Vec::new(), arithmetic: Arithmetic::Single };
    for (i, tree) in model.trees.iter().enumerate() {
        booster.trees.push(read_tree(tree, count).map_err(|e| match e {
            ReadError::Malformed(m) => malformed(format!("tree {i}: {m}")),
            unsupported => unsupported,
        })?);
    }
    if booster.trees.is_empty() {
        return Err(malformed("the model has no trees".into()));
    }
    booster.check().map_err(malformed)?;
    Ok(ForeignModel { library_version: version, objective, features, booster })
}

/// `base_score` as the file writes it: `5E-1`, or `[5E-1]` (XGBoost 3), a probability.
fn base_score(text: &str) -> Result<f32, ReadError> {
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    match inner.parse::<f32>() {
        Ok(p) if p > 0.0 && p < 1.0 => Ok(p),
        _ => {
            Err(malformed(format!("the base score `{}` is not a probability strictly between 0 and 1", bounded(text))))
        }
    }
}

/// A feature's recorded categories, in the order of their codes (`None` when none are recorded).
fn levels(encoding: &Encoding) -> Result<Option<Vec<String>>, ReadError> {
    if encoding.values.is_empty() {
        return Ok(None);
    }
    if encoding.offsets.is_empty() {
        return encoding.values.iter().map(level_text).collect::<Result<Vec<_>, _>>().map(Some);
    }
    // Strings: UTF-8 bytes, the i-th from offsets[i] to offsets[i + 1].
    let bytes: Vec<u8> = encoding
        .values
        .iter()
        .map(|v| v.as_u64().and_then(|b| u8::try_from(b).ok()))
        .collect::<Option<_>>()
        .ok_or_else(|| malformed("a category dictionary holds something other than bytes".into()))?;
    encoding
        .offsets
        .windows(2)
        .map(|w| {
            bytes
                .get(w[0]..w[1])
                .and_then(|b| std::str::from_utf8(b).ok())
                .map(str::to_string)
                .ok_or_else(|| malformed("a category dictionary's offsets do not cut it into UTF-8 strings".into()))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// One tree of the JSON model as a [`Tree`](crate::learn::gbdt::Tree).
fn read_tree(tree: &JsonTree, n_inputs: usize) -> Result<crate::learn::gbdt::Tree, ReadError> {
    let n = tree.left_children.len();
    if n == 0 || n > MAX_NODES {
        return Err(malformed(format!("{n} nodes")));
    }
    for (what, len) in [
        ("right_children", tree.right_children.len()),
        ("split_indices", tree.split_indices.len()),
        ("split_conditions", tree.split_conditions.len()),
        ("default_left", tree.default_left.len()),
    ] {
        if len != n {
            return Err(malformed(format!("`{what}` has {len} entries for {n} nodes")));
        }
    }
    let categorical = tree.split_type.contains(&1);
    if categorical
        && (tree.categories_nodes.len() != tree.categories_segments.len()
            || tree.categories_nodes.len() != tree.categories_sizes.len())
    {
        return Err(malformed("the categories' nodes, segments and sizes differ in length".into()));
    }
    let child = |c: i64| -> Result<usize, ReadError> {
        usize::try_from(c).ok().filter(|&c| c < n).ok_or_else(|| malformed(format!("a child {c} out of range")))
    };
    lay_out(0, n, |id| {
        let as_f32 = |x: f64| -> Result<f32, ReadError> {
            let y = x as f32;
            if y.is_finite() {
                Ok(y)
            } else {
                Err(malformed(format!("the value {x} at node {id}")))
            }
        };
        if tree.left_children[id] == -1 {
            // The leaf's value, a single-precision number.
            return Ok(Node::Leaf(f64::from(as_f32(tree.split_conditions[id])?)));
        }
        let children = [child(tree.left_children[id])?, child(tree.right_children[id])?];
        let feature = usize::try_from(tree.split_indices[id])
            .ok()
            .filter(|&f| f < n_inputs)
            .ok_or_else(|| malformed(format!("node {id} tests feature {} of {n_inputs}", tree.split_indices[id])))?;
        let missing_left = match &tree.default_left[id] {
            Value::Bool(b) => *b,
            Value::Number(x) => x.as_u64() == Some(1),
            other => return Err(malformed(format!("`default_left` holds {other}"))),
        };
        if tree.split_type.get(id) == Some(&1) {
            let at = tree
                .categories_nodes
                .iter()
                .position(|&c| c == id as i64)
                .ok_or_else(|| malformed(format!("the categorical split {id} lists no categories")))?;
            let (start, size) = (tree.categories_segments[at], tree.categories_sizes[at]);
            let listed = usize::try_from(start)
                .ok()
                .zip(usize::try_from(size).ok())
                .and_then(|(s, k)| tree.categories.get(s..s.checked_add(k)?))
                .ok_or_else(|| malformed(format!("the categories of node {id} are out of range")))?;
            let mut codes: Vec<u32> = listed
                .iter()
                .map(|&c| u32::try_from(c).ok().filter(|&c| c < MAX_CATEGORY_CODE))
                .collect::<Option<_>>()
                .ok_or_else(|| malformed(format!("node {id} lists a category out of range")))?;
            codes.sort_unstable();
            codes.dedup();
            // XGBoost sends the listed categories right.
            let split = CategorySplit { codes, listed_left: false };
            return Ok(Node::Split { feature, threshold: 0.0, categories: Some(split), missing_left, children });
        }
        let threshold = single_precision_bound(as_f32(tree.split_conditions[id])?);
        Ok(Node::Split { feature, threshold, categories: None, missing_left, children })
    })
}
