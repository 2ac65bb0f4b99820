//! Boosted trees trained by other libraries, read from the files those libraries save
//! (LightGBM's text model, XGBoost's JSON model) into this crate's [`Booster`], decision for
//! decision: see each reader for the library's semantics and how they are kept.
//!
//! A reader gives the model's features by name (numbers, or categories with the levels the
//! model recorded in the order of their codes); mapping them onto a schema is the pipeline's
//! import.

pub mod lightgbm;
pub mod xgboost;

use crate::learn::gbdt::{Booster, CategorySplit, Tree};

/// A library whose models are imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Library {
    /// LightGBM (`Booster.save_model("model.txt")`).
    LightGbm,
    /// XGBoost (`save_model("model.json")`).
    XgBoost,
}

impl Library {
    /// The library's name as reports and lineage write it: `lightgbm` or `xgboost`.
    pub fn name(self) -> &'static str {
        match self {
            Library::LightGbm => "lightgbm",
            Library::XgBoost => "xgboost",
        }
    }

    /// Reads a model file of this library.
    pub fn read(self, bytes: &[u8]) -> Result<ForeignModel, ReadError> {
        match self {
            Library::LightGbm => lightgbm::read(bytes),
            Library::XgBoost => xgboost::read(bytes),
        }
    }
}

/// A model read from another library's file.
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignModel {
    /// The library's version as the file states it (LightGBM: its format line, `v4`;
    /// XGBoost: its `version` array, `3.2.0`).
    pub library_version: Option<String>,
    /// The objective as the file names it (`binary`, `binary:logistic`).
    pub objective: String,
    /// The model's features, in the order of its inputs.
    pub features: Vec<Feature>,
    /// The trees, reading one input per feature, in [`Feature`] order.
    pub booster: Booster,
}

/// One input of a foreign model.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    /// The feature's name in the model.
    pub name: String,
    /// How the model reads it.
    pub kind: FeatureKind,
}

/// How a foreign model reads one input.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureKind {
    /// A number, NaN when missing.
    Number,
    /// A category's code; the levels in the order of their codes when the file records them.
    Category {
        /// Level texts by code (`None`: the file does not say).
        levels: Option<Vec<String>>,
    },
}

/// Why a file was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The file is not a model of the library, or is damaged; what was wrong.
    Malformed(String),
    /// A model of the library that cannot be imported, naming what was found (an objective,
    /// a number of classes, linear trees, another booster).
    Unsupported(String),
}

/// The largest f64 `T` such that `(x as f32) < t` exactly when `x <= T`, for every f64 `x`
/// that is not NaN: XGBoost's single-precision test `x < t` on inputs cast to f32, as the
/// double-precision test `x <= T` of this crate's trees (`t` not NaN; for `t` = -inf, which no
/// fit makes, -inf itself is the one `x` on the wrong side).
///
/// Rounding to f32 is monotone, so the `x` that round below `t` are those up to some bound: the
/// midpoint of `t` and the f32 before it, included when it rounds down (ties go to the even
/// one), else the f64 just below it.
pub fn single_precision_bound(t: f32) -> f64 {
    if t.is_nan() || t == f32::NEG_INFINITY {
        return f64::from(t);
    }
    // Half an ulp of f32::MAX: beyond MAX + half of it, an f64 rounds to infinity.
    let half_ulp_max = (f64::from(f32::MAX) - f64::from(f32_before(f32::MAX))) / 2.0;
    let midpoint = if t == f32::INFINITY {
        f64::from(f32::MAX) + half_ulp_max
    } else if t == -f32::MAX {
        -(f64::from(f32::MAX) + half_ulp_max)
    } else {
        (f64::from(f32_before(t)) + f64::from(t)) / 2.0
    };
    if (midpoint as f32) < t {
        midpoint
    } else {
        midpoint.next_down()
    }
}

/// The f32 just below `t` (finite, above -f32::MAX); -0.0 and 0.0 are one value here, as `<`
/// sees them.
fn f32_before(t: f32) -> f32 {
    if t == 0.0 {
        return -f32::from_bits(1);
    }
    let bits = t.to_bits();
    if t > 0.0 {
        f32::from_bits(bits - 1)
    } else {
        f32::from_bits(bits + 1)
    }
}

/// One node of a foreign tree, as a reader sees it, before the tree is laid out.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// A leaf and its value.
    Leaf(f64),
    /// A split: its input, its test and its children (the reader's node ids).
    Split {
        /// The input tested.
        feature: usize,
        /// `x <= threshold` goes left (numbers), unused for a categorical split.
        threshold: f64,
        /// The categorical test, when it is one.
        categories: Option<CategorySplit>,
        /// Where a missing value goes.
        missing_left: bool,
        /// The children's ids.
        children: [usize; 2],
    },
}

/// Lays a tree out as this crate's [`Tree`], in depth-first order from `root` (so that each
/// child comes after its parent, as [`Tree::check`] asks), whatever the reader's numbering;
/// `node(id)` gives a node by the reader's id. Refuses a node reached twice or not at all
/// beyond `limit` nodes (a cycle).
pub(crate) fn lay_out(
    root: usize,
    limit: usize,
    mut node: impl FnMut(usize) -> Result<Node, ReadError>,
) -> Result<Tree, ReadError> {
    let mut tree = Tree::default();
    // (reader id, the laid-out parent's slot to point at it: (index, is left))
    let mut stack = vec![(root, None::<(usize, bool)>)];
    while let Some((id, parent)) = stack.pop() {
        let at = tree.feature.len();
        if at >= limit {
            return Err(ReadError::Malformed(format!("a tree has more than {limit} nodes, or a cycle")));
        }
        if let Some((p, is_left)) = parent {
            let slot = if is_left { &mut tree.left[p] } else { &mut tree.right[p] };
            *slot = at as u32;
        }
        match node(id)? {
            Node::Leaf(value) => {
                if !value.is_finite() {
                    return Err(ReadError::Malformed(format!("a leaf has the value {value}")));
                }
                tree.feature.push(-1);
                tree.value.push(value);
                tree.left.push(0);
                tree.right.push(0);
                tree.missing_left.push(false);
                tree.categories.push(None);
            }
            Node::Split { feature, threshold, categories, missing_left, children } => {
                let feature = i32::try_from(feature)
                    .map_err(|_| ReadError::Malformed(format!("a split tests the feature {feature}")))?;
                tree.feature.push(feature);
                tree.value.push(threshold);
                tree.left.push(0);
                tree.right.push(0);
                tree.missing_left.push(missing_left);
                tree.categories.push(categories);
                // Right pushed first: the left subtree is laid out first.
                stack.push((children[1], Some((at, false))));
                stack.push((children[0], Some((at, true))));
            }
        }
    }
    if !tree.missing_left.iter().any(|&m| m) {
        tree.missing_left.clear();
    }
    if tree.categories.iter().all(Option::is_none) {
        tree.categories.clear();
    }
    Ok(tree)
}

/// A category level recorded as a JSON value (a string, or a number for integer categories),
/// as the text a CSV file holds for it: numbers with an integral value without a fraction.
pub(crate) fn level_text(value: &serde_json::Value) -> Result<String, ReadError> {
    match value {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Ok(i.to_string()),
            (None, Some(x)) if x.fract() == 0.0 && x.abs() < 9.0e15 => Ok(format!("{}", x as i64)),
            (None, Some(x)) => Ok(x.to_string()),
            _ => Ok(n.to_string()),
        },
        serde_json::Value::Bool(b) => Ok(if *b { "True" } else { "False" }.to_string()),
        other => Err(ReadError::Malformed(format!("a category level is {other}"))),
    }
}

/// Text bounded for an error message: at most 200 characters, with the length when cut.
pub(crate) fn bounded(text: &str) -> String {
    if text.chars().count() <= 200 {
        text.to_string()
    } else {
        format!("{}… ({} characters)", text.chars().take(200).collect::<String>(), text.chars().count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Every f64 near the bound (the bound, its neighbours, and the f32 around it) and many
    /// random ones: `x <= bound` exactly when `(x as f32) < t`.
    fn check_bound(t: f32, rng: &mut Rng) {
        let bound = single_precision_bound(t);
        let mut xs = vec![bound, bound.next_up(), bound.next_down(), f64::from(t), f64::from(f32_before(t))];
        let mut x = bound;
        for _ in 0..40 {
            x = x.next_up();
            xs.push(x);
        }
        let mut x = bound;
        for _ in 0..40 {
            x = x.next_down();
            xs.push(x);
        }
        for _ in 0..200 {
            // Within a few f32 ulps of t.
            let spread = (f64::from(t) - f64::from(f32_before(t))).abs().max(f64::MIN_POSITIVE);
            xs.push(f64::from(t) + (rng.uniform() - 0.5) * 8.0 * spread);
        }
        for x in xs.into_iter().filter(|x| !x.is_nan()) {
            assert_eq!(x <= bound, (x as f32) < t, "t {t:e} ({:#x}), x {x:e}, bound {bound:e}", t.to_bits());
        }
    }

    #[test]
    fn the_single_precision_bound_splits_every_f64_as_xgboost_does() {
        let mut rng = Rng::new(7);
        let special = [
            0.0f32,
            -0.0,
            1.0,
            -1.0,
            0.5,
            1.5,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            f32::from_bits(1),
            -f32::from_bits(1),
            f32::from_bits(2),
            f32::MAX,
            -f32::MAX,
            f32::INFINITY,
            f32::from_bits(f32::MAX.to_bits() - 1),
            -f32::from_bits(f32::MAX.to_bits() - 1),
            16_777_216.0,
            16_777_217.0,
            0.1,
            0.264_928_46,
            1e-45,
        ];
        for t in special {
            check_bound(t, &mut rng);
        }
        // Both parities of the f32 below t (ties to even decide whether the midpoint is in),
        // across the whole range of exponents, subnormals included.
        for _ in 0..20_000 {
            let bits = (rng.uniform() * f64::from(u32::MAX)) as u32;
            let t = f32::from_bits(bits);
            if t.is_finite() {
                check_bound(t, &mut rng);
            }
        }
    }
}
