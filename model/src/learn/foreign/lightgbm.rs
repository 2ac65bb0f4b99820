//! LightGBM's text model (`Booster.save_model("model.txt")`, format `v4`) read into a
//! [`Booster`], with LightGBM's own prediction semantics (`include/LightGBM/tree.h`):
//!
//! - a numerical split sends `x <= threshold` left, compared in double precision; a missing
//!   value (NaN) follows the split's missing type: `None` reads it as 0.0 (so it goes left
//!   exactly when `0 <= threshold`), `NaN` sends it the default way (the `default_left` bit);
//!   the `Zero` type (`zero_as_missing`, which also sends every |x| <= 1e-35 the default way)
//!   is refused;
//! - a categorical split sends left the codes in its bitset; NaN, a negative number and any
//!   code not in the set go right;
//! - the raw score is the sum of the leaf values in double precision, from 0 (the initial
//!   score is folded into the first tree's leaves), and `sigmoid:k` scales it: the leaves are
//!   multiplied by `k` here (exactly the same when `k` is 1, LightGBM's default).

use super::{bounded, lay_out, level_text, Feature, FeatureKind, ForeignModel, Node, ReadError};
use crate::learn::gbdt::{Arithmetic, Booster, CategorySplit, MAX_CATEGORY_CODE};

/// The bits of LightGBM's `decision_type`.
const CATEGORICAL: u8 = 1;
const DEFAULT_LEFT: u8 = 2;
/// Missing types, in bits 2 and 3.
const MISSING_NONE: u8 = 0;
const MISSING_ZERO: u8 = 1;
const MISSING_NAN: u8 = 2;

/// Trees read at most: a larger file is not a model anyone serves.
const MAX_TREES: usize = 100_000;
/// Leaves a tree may have at most (LightGBM's own bound on `num_leaves` is 131072).
const MAX_LEAVES: usize = 131_072;

/// Reads a LightGBM text model.
pub fn read(bytes: &[u8]) -> Result<ForeignModel, ReadError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| malformed("the file is not UTF-8 text: not a LightGBM text model".into()))?;
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
    if lines.next() != Some("tree") {
        return Err(malformed("the first line is not `tree`: not a LightGBM text model".into()));
    }
    let mut header = Section::default();
    let mut trees: Vec<Section> = Vec::new();
    let mut pandas_categorical = None;
    let mut categorical_parameter = None;
    let mut in_trees = true;
    for line in lines {
        if let Some(json) = line.strip_prefix("pandas_categorical:") {
            pandas_categorical = Some(json.to_string());
        } else if let Some(list) = line.strip_prefix("[categorical_feature: ").and_then(|l| l.strip_suffix(']')) {
            categorical_parameter = Some(list.to_string());
        } else if line == "end of trees" {
            in_trees = false;
        } else if line.starts_with("Tree=") && in_trees {
            if trees.len() == MAX_TREES {
                return Err(malformed(format!("more than {MAX_TREES} trees")));
            }
            trees.push(Section::default());
        } else if in_trees {
            match trees.last_mut() {
                Some(tree) => tree.add(line),
                None => header.add(line),
            }
        }
    }
    let version = header.get("version").map(str::to_string);
    if header.has("average_output") {
        return Err(ReadError::Unsupported(
            "a random forest (`average_output`, boosting `rf`): only boosted trees are imported".into(),
        ));
    }
    let objective_line = header.require("objective")?;
    let mut words = objective_line.split_whitespace();
    let objective = words.next().unwrap_or_default().to_string();
    let num_class = header.get("num_class").unwrap_or("1");
    if objective != "binary" || num_class != "1" {
        return Err(ReadError::Unsupported(format!(
            "the objective `{}` with num_class {}: only binary logistic models (objective `binary`) are imported",
            bounded(&objective),
            bounded(num_class)
        )));
    }
    let mut scale = 1.0;
    for word in words {
        if let Some(k) = word.strip_prefix("sigmoid:") {
            scale = k
                .parse::<f64>()
                .ok()
                .filter(|k| k.is_finite() && *k > 0.0)
                .ok_or_else(|| malformed(format!("the objective's sigmoid is `{}`", bounded(k))))?;
        }
    }
    let per_iteration = header.get("num_tree_per_iteration").unwrap_or("1");
    if per_iteration != "1" {
        return Err(ReadError::Unsupported(format!(
            "{} trees per iteration: only binary models (one tree an iteration) are imported",
            bounded(per_iteration)
        )));
    }
    let features = features(&header, categorical_parameter.as_deref(), pandas_categorical.as_deref())?;
    let n_inputs = features.len();
    let mut booster = Booster { base_score: 0.0, n_inputs, trees: Vec::new(), arithmetic: Arithmetic::Double };
    for (i, section) in trees.iter().enumerate() {
        let tree = read_tree(section, n_inputs, scale).map_err(|e| match e {
            ReadError::Malformed(m) => malformed(format!("tree {i}: {m}")),
            unsupported => unsupported,
        })?;
        booster.trees.push(tree);
    }
    if booster.trees.is_empty() {
        return Err(malformed("the model has no trees".into()));
    }
    booster.check().map_err(malformed)?;
    Ok(ForeignModel { library_version: version, objective, features, booster })
}

fn malformed(message: String) -> ReadError {
    ReadError::Malformed(message)
}

/// `key=value` lines of one section (the header, or a tree), in order.
#[derive(Debug, Default)]
struct Section {
    entries: Vec<(String, String)>,
    /// Lines without `=` (flags such as `average_output`).
    flags: Vec<String>,
}

impl Section {
    fn add(&mut self, line: &str) {
        match line.split_once('=') {
            Some((k, v)) => self.entries.push((k.to_string(), v.to_string())),
            None if !line.is_empty() => self.flags.push(line.to_string()),
            None => {}
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    fn require(&self, key: &str) -> Result<&str, ReadError> {
        self.get(key).ok_or_else(|| malformed(format!("no `{key}=` line")))
    }

    /// A space-separated list of numbers.
    fn numbers<T: std::str::FromStr>(&self, key: &str, count: usize) -> Result<Vec<T>, ReadError> {
        let text = self.require(key)?;
        let values: Vec<T> = text
            .split_whitespace()
            .map(|w| w.parse::<T>().map_err(|_| malformed(format!("`{key}` holds `{}`", bounded(w)))))
            .collect::<Result<_, _>>()?;
        if values.len() != count {
            return Err(malformed(format!("`{key}` has {} values, {count} expected", values.len())));
        }
        Ok(values)
    }
}

/// The features: names, and which are categorical with their levels.
fn features(
    header: &Section,
    categorical_parameter: Option<&str>,
    pandas_categorical: Option<&str>,
) -> Result<Vec<Feature>, ReadError> {
    let count: usize = header
        .require("max_feature_idx")?
        .parse::<usize>()
        .map_err(|_| malformed("`max_feature_idx` is not a number".into()))?
        + 1;
    let names: Vec<&str> = header.require("feature_names")?.split(' ').collect();
    let infos: Vec<&str> = header.require("feature_infos")?.split(' ').collect();
    if names.len() != count || infos.len() != count {
        return Err(malformed(format!(
            "{} feature names and {} feature infos for {count} features",
            names.len(),
            infos.len()
        )));
    }
    // Categorical: listed as such in the parameters, or described by a list of category values
    // (a number's description is `[min:max]`, an unused feature's `none`).
    let listed: Vec<usize> = categorical_parameter
        .map(|list| list.split(',').filter_map(|i| i.trim().parse().ok()).collect())
        .unwrap_or_default();
    let categorical: Vec<bool> =
        (0..count).map(|i| listed.contains(&i) || (!infos[i].starts_with('[') && infos[i] != "none")).collect();
    let recorded: Option<Vec<Vec<serde_json::Value>>> = match pandas_categorical {
        None | Some("null") => None,
        Some(json) => Some(
            serde_json::from_str(json)
                .map_err(|e| malformed(format!("`pandas_categorical` is not a list of lists: {e}")))?,
        ),
    };
    let mut recorded = recorded.map(|r| r.into_iter());
    let mut features = Vec::with_capacity(count);
    for i in 0..count {
        let kind = if !categorical[i] {
            FeatureKind::Number
        } else if let Some(levels) = recorded.as_mut() {
            let levels = levels.next().ok_or_else(|| {
                malformed(format!(
                    "`pandas_categorical` has fewer lists than there are categorical features ({})",
                    categorical.iter().filter(|&&c| c).count()
                ))
            })?;
            FeatureKind::Category { levels: Some(levels.iter().map(level_text).collect::<Result<_, _>>()?) }
        } else {
            // Trained on codes, not on a pandas category: a category is its own code, and the
            // codes seen in training are the description's non-negative values.
            let largest = infos[i].split(':').filter_map(|c| c.parse::<i64>().ok()).filter(|&c| c >= 0).max();
            let levels = largest.map(|m| (0..=m).map(|c| c.to_string()).collect()).unwrap_or_default();
            FeatureKind::Category { levels: Some(levels) }
        };
        features.push(Feature { name: names[i].to_string(), kind });
    }
    if recorded.is_some_and(|mut rest| rest.next().is_some()) {
        return Err(malformed("`pandas_categorical` has more lists than there are categorical features".into()));
    }
    Ok(features)
}

/// One `Tree=` section as a [`Tree`](crate::learn::gbdt::Tree).
fn read_tree(section: &Section, n_inputs: usize, scale: f64) -> Result<crate::learn::gbdt::Tree, ReadError> {
    if section.get("is_linear").is_some_and(|v| v != "0") {
        return Err(ReadError::Unsupported(
            "linear trees (`linear_tree`, `is_linear=1`): only trees with constant leaves are imported".into(),
        ));
    }
    let leaves: usize =
        section.require("num_leaves")?.parse().map_err(|_| malformed("`num_leaves` is not a number".into()))?;
    if leaves == 0 || leaves > MAX_LEAVES {
        return Err(malformed(format!("{leaves} leaves")));
    }
    let leaf_value: Vec<f64> = section.numbers("leaf_value", leaves)?;
    if leaves == 1 {
        return lay_out(0, 1, |_| Ok(Node::Leaf(leaf_value[0] * scale)));
    }
    let splits = leaves - 1;
    let feature: Vec<usize> = section.numbers("split_feature", splits)?;
    let threshold: Vec<f64> = section.numbers("threshold", splits)?;
    let decision: Vec<u8> = section.numbers("decision_type", splits)?;
    let left: Vec<i64> = section.numbers("left_child", splits)?;
    let right: Vec<i64> = section.numbers("right_child", splits)?;
    let num_cat: usize = section.get("num_cat").unwrap_or("0").parse().map_err(|_| malformed("`num_cat`".into()))?;
    let (boundaries, bits): (Vec<usize>, Vec<u32>) = if num_cat > 0 {
        let boundaries: Vec<usize> = section.numbers("cat_boundaries", num_cat + 1)?;
        let words = *boundaries.last().unwrap_or(&0);
        (boundaries, section.numbers("cat_threshold", words)?)
    } else {
        (Vec::new(), Vec::new())
    };
    // LightGBM numbers splits 0.. and leaves as ~0, ~1, …: here leaves are ids past the splits.
    let id = |child: i64| -> Result<usize, ReadError> {
        let id = if child < 0 { splits + (!child) as usize } else { child as usize };
        if id >= splits + leaves {
            return Err(malformed(format!("a child {child} out of range")));
        }
        Ok(id)
    };
    lay_out(0, splits + leaves, |n| {
        if n >= splits {
            return Ok(Node::Leaf(leaf_value[n - splits] * scale));
        }
        let f = feature[n];
        if f >= n_inputs {
            return Err(malformed(format!("a split tests feature {f} of {n_inputs}")));
        }
        let d = decision[n];
        let default_left = d & DEFAULT_LEFT != 0;
        let children = [id(left[n])?, id(right[n])?];
        if d & CATEGORICAL != 0 {
            let index = threshold[n];
            let range = (index >= 0.0 && index.fract() == 0.0 && (index as usize) < num_cat)
                .then(|| boundaries[index as usize]..boundaries[index as usize + 1])
                .filter(|r| r.start <= r.end && r.end <= bits.len())
                .ok_or_else(|| malformed(format!("a categorical split refers to the set {index} of {num_cat}")))?;
            let mut codes = Vec::new();
            for (w, word) in bits[range].iter().enumerate() {
                for b in 0..32u32 {
                    if word >> b & 1 == 1 {
                        let code = 32 * w as u32 + b;
                        if code >= MAX_CATEGORY_CODE {
                            return Err(malformed(format!("a categorical split lists the category {code}")));
                        }
                        codes.push(code);
                    }
                }
            }
            // NaN goes right whatever the missing type (LightGBM's CategoricalDecision).
            let split = CategorySplit { codes, listed_left: true };
            return Ok(Node::Split {
                feature: f,
                threshold: 0.0,
                categories: Some(split),
                missing_left: false,
                children,
            });
        }
        let t = threshold[n];
        let missing_left = match (d >> 2) & 3 {
            // A NaN is read as 0.0.
            MISSING_NONE => 0.0 <= t,
            MISSING_NAN => default_left,
            MISSING_ZERO => {
                return Err(ReadError::Unsupported(
                    "splits that treat zero as missing (`zero_as_missing`): not imported".into(),
                ))
            }
            other => return Err(malformed(format!("the missing type {other}"))),
        };
        Ok(Node::Split { feature: f, threshold: t, categories: None, missing_left, children })
    })
}
