//! The fitted model of either family, and its scorer for many rows at a time.

use serde::{Deserialize, Serialize};

use crate::learn::gbdt::scorer::{Forest, Scratch};
use crate::learn::gbdt::Booster;
use crate::learn::logistic::Logistic;

/// A model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Histogram gradient-boosted trees (this crate's own implementation).
    #[default]
    GradientBoosting,
    /// L2-regularised logistic regression (linfa-logistic).
    LogisticRegression,
}

impl Family {
    /// The name used in configurations and reports.
    pub fn name(self) -> &'static str {
        match self {
            Family::GradientBoosting => "gradient_boosting",
            Family::LogisticRegression => "logistic_regression",
        }
    }
}

/// A fitted model of one of the supported families.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum FittedModel {
    /// Gradient-boosted trees.
    GradientBoosting(Booster),
    /// Logistic regression.
    LogisticRegression(Logistic),
}

impl FittedModel {
    /// Positive-class probability of one row of encoded inputs.
    pub fn probability(&self, inputs: &[f64]) -> f64 {
        match self {
            FittedModel::GradientBoosting(b) => b.probability(inputs),
            FittedModel::LogisticRegression(l) => l.probability(inputs),
        }
    }

    /// Scores many rows at a time: boosted trees compiled into a [`Forest`] once (the same
    /// probabilities, bit for bit, several times faster), other models row by row.
    pub fn scorer(&self) -> Scorer<'_> {
        Scorer { model: self, prepared: self.prepare() }
    }

    /// What [`FittedModel::scorer`] compiles, owned: for a caller that keeps the model and its
    /// compiled form side by side (a server holding the model it serves).
    pub fn prepare(&self) -> Prepared {
        let forest = match self {
            FittedModel::GradientBoosting(booster) => Forest::new(booster),
            FittedModel::LogisticRegression(_) => None,
        };
        Prepared { forest }
    }

    /// Checks the model's structure against the number of inputs its encoders write.
    pub fn check(&self, n_inputs: usize) -> std::result::Result<(), String> {
        match self {
            FittedModel::GradientBoosting(b) if b.n_inputs != n_inputs => {
                Err(format!("the trees read {} inputs, the encoders write {n_inputs}", b.n_inputs))
            }
            FittedModel::GradientBoosting(b) => b.check(),
            FittedModel::LogisticRegression(l) => l.check(n_inputs),
        }
    }

    /// The model's family.
    pub fn family(&self) -> Family {
        match self {
            FittedModel::GradientBoosting(_) => Family::GradientBoosting,
            FittedModel::LogisticRegression(_) => Family::LogisticRegression,
        }
    }
}

/// A model ready to score many rows; see [`FittedModel::scorer`].
#[derive(Debug)]
pub struct Scorer<'a> {
    model: &'a FittedModel,
    prepared: Prepared,
}

impl Scorer<'_> {
    /// Positive-class probabilities of rows of encoded inputs, `width` a row, one after the
    /// other in `inputs`, written to `out` (one per row).
    pub fn probabilities(&self, inputs: &[f64], width: usize, out: &mut [f64]) {
        self.prepared.probabilities(self.model, inputs, width, out);
    }
}

/// Below this many rows, [`Prepared::probabilities`] walks the trees rather than the compiled
/// forest (a server's requests of a record or a few).
const FEW_ROWS: usize = 16;

/// A model's compiled scoring form, without the model; see [`FittedModel::prepare`].
#[derive(Debug)]
pub struct Prepared {
    forest: Option<Forest>,
}

impl Prepared {
    /// [`Scorer::probabilities`] of `model`, which must be the model this was prepared from.
    pub fn probabilities(&self, model: &FittedModel, inputs: &[f64], width: usize, out: &mut [f64]) {
        match &self.forest {
            // A few rows are walked down the trees: the compiled forest scores 64 rows a block,
            // so one row costs it a whole block (and its working space), ~20 times a walk. The
            // same probabilities either way, bit for bit (see [`Forest`]).
            Some(forest) if out.len() >= FEW_ROWS => forest.probabilities(inputs, width, out, &mut Scratch::default()),
            _ => {
                for (p, row) in out.iter_mut().zip(inputs.chunks_exact(width.max(1))) {
                    *p = model.probability(row);
                }
            }
        }
    }
}
