//! What is served while a rollout is open: the baseline (production) and the candidate, with the
//! rollout's mode and weight, swapped as one ([`Serving`]) so that no request sees a half state;
//! which version answers a record (canary: a hash of the candidate and the record's id, the same
//! on every replica) and the role each version plays in the metrics and receipts ([`Role`]).

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::records::Fields;
use super::Loaded;

/// What a version does for a record: the `role` label of every per-version series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The version in production: every answer when no rollout is open, the answers a canary
    /// does not give, every answer in shadow mode.
    Baseline,
    /// The candidate answering its share of the records (canary mode).
    Canary,
    /// The candidate scoring every record beside the baseline, its answers kept, never given
    /// (shadow mode).
    Shadow,
}

impl Role {
    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Role::Baseline => "baseline",
            Role::Canary => "canary",
            Role::Shadow => "shadow",
        }
    }

    /// The role a label value names.
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "baseline" => Some(Role::Baseline),
            "canary" => Some(Role::Canary),
            "shadow" => Some(Role::Shadow),
            _ => None,
        }
    }
}

/// How the candidate takes part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A share of the records, by weight, answered by the candidate.
    Canary,
    /// Every record scored by both; the baseline answers.
    Shadow,
}

impl Mode {
    /// The `mode` label of `mlgate_rollout_info`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Canary => "canary",
            Mode::Shadow => "shadow",
        }
    }
}

/// The records' buckets: a weight in percent takes `weight × 100` of them.
pub const BUCKETS: u64 = 10_000;

/// The bucket of a record's `id` in a rollout of `candidate`:
/// `u64::from_be_bytes(sha256(candidate + "\0" + id)[..8]) % 10_000`. The candidate is part of
/// the key so that the ids a canary takes differ from one rollout to the next; nothing of the
/// replica is, so that an id gets the same version from every replica.
pub fn bucket(candidate: &str, id: &str) -> u64 {
    let mut digest = Sha256::new();
    digest.update(candidate.as_bytes());
    digest.update([0u8]);
    digest.update(id.as_bytes());
    let hash = digest.finalize();
    u64::from_be_bytes(hash[..8].try_into().expect("a sha256 has 32 bytes")) % BUCKETS
}

/// True when the canary `candidate` at `weight` percent answers the record `id`.
pub fn to_candidate(candidate: &str, weight: u32, id: &str) -> bool {
    bucket(candidate, id) < u64::from(weight.min(100)) * 100
}

/// The candidate of an open rollout, loaded and compiled like any served version.
pub struct Candidate {
    /// The candidate version.
    pub loaded: Arc<Loaded>,
    /// Canary or shadow.
    pub mode: Mode,
    /// The share of records it answers, in percent (0 in shadow mode).
    pub weight: u32,
    /// For each of the candidate's compiled columns, its index in the baseline's (`None`:
    /// absent there, read as an empty field); `None` when both read the same columns in the same
    /// order, so that a record parsed for the baseline is scored by the candidate as it is.
    pub remap: Option<Vec<Option<usize>>>,
}

impl Candidate {
    /// The candidate `loaded` beside `baseline`.
    pub fn new(loaded: Arc<Loaded>, baseline: &Loaded, mode: Mode, weight: u32) -> Candidate {
        let (ours, theirs) = (loaded.compiled.columns(), baseline.compiled.columns());
        let remap = (ours != theirs).then(|| ours.iter().map(|c| baseline.index.get(c).copied()).collect());
        Candidate { loaded, mode, weight: if mode == Mode::Shadow { 0 } else { weight.min(100) }, remap }
    }

    /// A record parsed for the baseline, laid out as the candidate reads it.
    pub fn record(&self, record: &Fields) -> Fields {
        match &self.remap {
            None => record.clone(),
            Some(remap) => record.remap(remap),
        }
    }
}

/// What a request is scored with: the baseline (production, or the pinned version), and the
/// candidate while a rollout is open. Swapped whole by the poller; a request keeps the one it
/// started with. It reads as its baseline (`Deref`): the baseline parses the requests and names
/// the answers' top-level `version`.
pub struct Serving {
    /// The version in production.
    pub baseline: Arc<Loaded>,
    /// The rollout's candidate, if one is open and followed.
    pub candidate: Option<Candidate>,
}

impl std::ops::Deref for Serving {
    type Target = Loaded;

    fn deref(&self) -> &Loaded {
        &self.baseline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract's hash, against Python's: `int.from_bytes(hashlib.sha256(b"v2\x00customer-42")
    /// .digest()[:8], "big") % 10000` is 5726 — what another implementation (a load balancer, a
    /// test) must compute to find where an id goes.
    #[test]
    fn the_bucket_is_the_contracts_hash() {
        assert_eq!(bucket("v2", "customer-42"), 5726);
        // Another candidate, another draw; no weight, no candidate; all of it, every record.
        assert!((0..100).any(|i| bucket("v2", &i.to_string()) != bucket("v3", &i.to_string())));
        assert!(!(0..1000).any(|i| to_candidate("v2", 0, &i.to_string())));
        assert!((0..1000).all(|i| to_candidate("v2", 100, &i.to_string())));
    }

    /// 20 % over 10,000 ids takes 20 % ± 1.5 %, and the same ids every time.
    #[test]
    fn a_canary_at_20_percent_takes_a_fifth_of_the_ids_and_always_the_same() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("customer-{i}")).collect();
        let taken: Vec<bool> = ids.iter().map(|id| to_candidate("v7", 20, id)).collect();
        let share = taken.iter().filter(|&&t| t).count() as f64 / ids.len() as f64;
        assert!((share - 0.20).abs() <= 0.015, "{share}");
        let again: Vec<bool> = ids.iter().map(|id| to_candidate("v7", 20, id)).collect();
        assert_eq!(taken, again);
        // A larger weight keeps every id the smaller one took: a step never sends one back.
        assert!(ids.iter().zip(&taken).all(|(id, &t)| !t || to_candidate("v7", 50, id)));
    }
}
