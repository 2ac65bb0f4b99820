//! What the server remembers between requests: predictions waiting for their feedback, the
//! rolling window of joined feedback per version, and the recent records drift is measured on
//! ([`DriftWindow`]). Each is bounded; what falls out is counted.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Arc;

use model::eval::metrics::{Confusion, MetricSet};

use super::drift::DriftWindow;
use super::receipt::Shadow;
use super::rollout::Role;
use super::Loaded;

/// A prediction's place in the order of arrival, and the prediction while it waits for its
/// feedback.
struct Slot {
    /// `id` hashed with the log's keys.
    key: u64,
    id: Box<str>,
    /// `None` once joined, or replaced by a later prediction under the same id.
    answered: Option<Answered>,
}

/// A prediction that feedback joined (through the log or a receipt): what the server answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered {
    /// The version that answered (shared by the predictions of a request).
    pub version: Arc<str>,
    /// What it was doing: the baseline, or a rollout's canary.
    pub role: Role,
    /// The probability answered.
    pub probability: f64,
    /// The decision answered.
    pub decision: bool,
    /// What the shadow said of the same record, in shadow mode.
    pub shadow: Option<Shadow>,
}

impl Answered {
    /// What the baseline `version` answered, without a shadow.
    #[cfg(test)]
    pub fn baseline(version: &str, probability: f64, decision: bool) -> Answered {
        Answered { version: version.into(), role: Role::Baseline, probability, decision, shadow: None }
    }

    /// The bytes its strings hold.
    fn text_bytes(&self) -> usize {
        self.version.len() + self.shadow.as_ref().map_or(0, |s| s.version.len())
    }
}

/// One joined prediction: its probability, the decision answered, and the label.
#[derive(Clone, Copy)]
struct Joined {
    probability: f64,
    decision: bool,
    label: bool,
}

/// Versions whose windows are kept (the current one and those before it).
const VERSIONS_KEPT: usize = 8;

/// What an entry of the log, or of its order, costs beyond its strings' bytes: the map's or the
/// queue's slot and the strings' headers, rounded up.
const ENTRY_OVERHEAD: usize = 64;

/// The bytes of a prediction's entry in the log.
fn entry_bytes(id: &str, answered: &Answered) -> usize {
    id.len() + answered.text_bytes() + ENTRY_OVERHEAD
}

/// The bytes of a prediction's place in the order.
fn place_bytes(id: &str) -> usize {
    id.len() + ENTRY_OVERHEAD
}

/// The log map's hasher: its keys are hashes already.
#[derive(Default)]
struct Hashed(u64);

impl Hasher for Hashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub struct Live {
    /// The number in the order of each waiting prediction, by its id's hash with `keys`: a
    /// 16-byte entry, looked up without reading the id (the map is looked up at random, once a
    /// record; the predictions themselves are in `order`, which is written and read front to
    /// back). The keys are random: no client can choose ids that collide. Two ids of one hash
    /// (once in 2⁶⁴ pairs) act as one id: the later replaces the earlier.
    log: HashMap<u64, u64, BuildHasherDefault<Hashed>>,
    keys: RandomState,
    /// The predictions in the order they came, numbered without gaps: the last is `seq`.
    order: VecDeque<Slot>,
    seq: u64,
    log_capacity: usize,
    /// The log's bound in bytes, and the bytes it holds (as [`logged_bytes`] counts them).
    log_bytes_capacity: usize,
    log_bytes: usize,
    windows: Vec<(String, VecDeque<Joined>)>,
    window: usize,
    /// Versions whose windows were dropped, not yet taken.
    dropped: Vec<String>,
    /// The recent records of the artifact served, for the rolling drift.
    recent: Option<DriftWindow>,
    recent_capacity: usize,
}

/// The rolling metrics of one version's window, in [`super::metrics::LIVE_METRICS`]'s order
/// (`None` where undefined: ROC AUC with one class), and the window's length.
pub struct LiveFigures {
    pub version: String,
    pub values: [Option<f64>; 6],
    pub joined: usize,
}

impl Live {
    pub fn new(log_capacity: usize, log_bytes_capacity: usize, window: usize, recent_capacity: usize) -> Live {
        Live {
            log: HashMap::default(),
            keys: RandomState::new(),
            order: VecDeque::new(),
            seq: 0,
            log_capacity,
            log_bytes_capacity,
            log_bytes: 0,
            windows: Vec::new(),
            window,
            dropped: Vec::new(),
            recent: None,
            recent_capacity,
        }
    }

    /// Logs a prediction under `id`; returns how many older ones were dropped to make room (in
    /// entries and in bytes). A second prediction with the same id replaces the first.
    pub fn log(&mut self, id: &str, answered: Answered) -> u64 {
        self.seq += 1;
        let seq = self.seq;
        let key = self.keys.hash_one(id);
        self.log_bytes += entry_bytes(id, &answered) + place_bytes(id);
        self.order.push_back(Slot { key, id: id.into(), answered: Some(answered) });
        if let Some(old) = self.log.insert(key, seq) {
            // Its place in the order stays until it comes to the front; only its entry goes.
            let freed = self.slot(old).and_then(|slot| slot.answered.take().map(|a| entry_bytes(&slot.id, &a)));
            self.log_bytes -= freed.unwrap_or(0);
        }
        let mut evicted = 0;
        while self.order.len() > self.log_capacity || (self.log_bytes > self.log_bytes_capacity && self.order.len() > 1)
        {
            let slot = self.order.pop_front().expect("longer than the capacity");
            self.log_bytes -= place_bytes(&slot.id);
            // A prediction joined or replaced already left only its place in the order; one
            // still waiting is the one its key maps to.
            if let Some(answered) = slot.answered {
                self.log.remove(&slot.key);
                self.log_bytes -= entry_bytes(&slot.id, &answered);
                evicted += 1;
            }
        }
        evicted
    }

    /// The place in the order numbered `seq`, while it is in the order.
    fn slot(&mut self, seq: u64) -> Option<&mut Slot> {
        let first = (self.seq + 1).checked_sub(self.order.len() as u64)?;
        let at = usize::try_from(seq.checked_sub(first)?).ok()?;
        self.order.get_mut(at)
    }

    /// The bytes the log holds, as its bound counts them.
    pub fn bytes(&self) -> usize {
        self.log_bytes
    }

    /// Predictions waiting for feedback.
    pub fn waiting(&self) -> usize {
        self.log.len()
    }

    /// Joins a label to the prediction logged under `id` and adds it to its version's window;
    /// returns what was answered, or `None` when no prediction waits under that id.
    pub fn join(&mut self, id: &str, label: bool) -> Option<Answered> {
        let key = self.keys.hash_one(id);
        let seq = *self.log.get(&key)?;
        // A waiting prediction's place holds it (it leaves the map when it leaves its place).
        let slot = self.slot(seq).filter(|slot| &*slot.id == id)?;
        let answered = slot.answered.take()?;
        self.log.remove(&key);
        self.log_bytes -= entry_bytes(id, &answered);
        self.record(&answered, label);
        Some(answered)
    }

    /// Adds a prediction joined with its `label` (through the log or a receipt) to its version's
    /// window.
    pub fn record(&mut self, answered: &Answered, label: bool) {
        let at = match self.windows.iter().position(|(v, _)| v.as_str() == &*answered.version) {
            Some(at) => at,
            None => {
                if self.windows.len() == VERSIONS_KEPT {
                    let (version, _) = self.windows.remove(0);
                    self.dropped.push(version);
                }
                self.windows.push((answered.version.to_string(), VecDeque::new()));
                self.windows.len() - 1
            }
        };
        let window = &mut self.windows[at].1;
        window.push_back(Joined { probability: answered.probability, decision: answered.decision, label });
        while window.len() > self.window {
            window.pop_front();
        }
    }

    /// The versions whose windows were dropped (to make room for a newer version's) since the
    /// last call.
    pub fn take_dropped(&mut self) -> Vec<String> {
        std::mem::take(&mut self.dropped)
    }

    /// The rolling metrics of `version`'s window.
    pub fn figures(&self, version: &str) -> Option<LiveFigures> {
        let (_, window) = self.windows.iter().find(|(v, _)| v == version)?;
        let labels: Vec<bool> = window.iter().map(|j| j.label).collect();
        let probabilities: Vec<f64> = window.iter().map(|j| j.probability).collect();
        // Each prediction is judged at the decision it was answered with.
        let mut confusion = Confusion::default();
        for j in window {
            match (j.decision, j.label) {
                (true, true) => confusion.tp += 1,
                (true, false) => confusion.fp += 1,
                (false, false) => confusion.tn += 1,
                (false, true) => confusion.r#fn += 1,
            }
        }
        let n = window.len();
        let positives = labels.iter().filter(|&&y| y).count();
        let roc_auc = MetricSet::compute(&labels, &probabilities, 0.5).ok().map(|m| m.roc_auc);
        let defined = |x: f64| (n > 0).then_some(x);
        Some(LiveFigures {
            version: version.to_string(),
            values: [
                defined(confusion.accuracy()),
                defined(confusion.precision()),
                defined(confusion.recall()),
                defined(confusion.f1()),
                roc_auc,
                defined(positives as f64 / n.max(1) as f64),
            ],
            joined: n,
        })
    }

    /// Keeps a record scored by `loaded` (its fields in the compiled columns' order) for the
    /// rolling drift; the first record of another artifact starts a new window.
    pub fn remember(&mut self, loaded: &Loaded, record: &super::records::Fields) {
        if !self.recent.as_ref().is_some_and(|w| w.is_for(&loaded.sha256)) {
            self.recent = Some(DriftWindow::new(loaded, self.recent_capacity));
        }
        if let Some(window) = &mut self.recent {
            window.push(record);
        }
    }

    /// The recent records scored by `loaded`'s artifact (`None` when none), as a data set.
    pub fn recent(&self, loaded: &Loaded) -> Option<model::data::dataset::Dataset> {
        let window = self.recent.as_ref().filter(|w| w.is_for(&loaded.sha256) && w.rows() > 0)?;
        Some(window.dataset(loaded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_drops_its_oldest_predictions_and_counts_them() {
        let mut live = Live::new(3, 1 << 20, 10, 10);
        assert_eq!(live.log("a", Answered::baseline("v1", 0.9, true)), 0);
        live.log("b", Answered::baseline("v1", 0.1, false));
        live.log("c", Answered::baseline("v1", 0.8, true));
        assert_eq!(live.log("d", Answered::baseline("v1", 0.2, false)), 1);
        assert_eq!(live.join("a", true), None, "a was dropped");
        assert_eq!(live.join("b", false).map(|a| a.version).as_deref(), Some("v1"));
        assert_eq!(live.join("b", false), None, "joined once only");
        // A joined prediction's place in the order is not counted as a drop.
        assert_eq!(live.log("e", Answered::baseline("v1", 0.2, false)), 0);
        assert_eq!(live.waiting(), 3);
    }

    #[test]
    fn the_log_is_bounded_in_bytes_as_well_as_entries() {
        // Room for about ten predictions of 100-byte ids.
        let one = entry_bytes(&"x".repeat(100), &Answered::baseline("v1", 0.5, true)) + place_bytes(&"x".repeat(100));
        let mut live = Live::new(1000, 10 * one, 10, 10);
        let mut evicted = 0;
        for i in 0..100 {
            evicted += live.log(&format!("{i:0100}"), Answered::baseline("v1", 0.5, true));
            assert!(live.bytes() <= 10 * one, "{} bytes after {i}", live.bytes());
        }
        assert_eq!(live.waiting(), 10);
        assert_eq!(evicted, 90);
        // Joined and replaced entries give their bytes back.
        assert!(live.join(&format!("{:0100}", 99), true).is_some());
        live.log(&format!("{:0100}", 98), Answered::baseline("v1", 0.5, true));
        assert_eq!(live.waiting(), 9);
        for i in 0..100 {
            live.join(&format!("{i:0100}"), true);
        }
        assert_eq!(live.waiting(), 0);
        // What is left is the places in the order of the predictions joined since.
        assert!(live.bytes() <= 11 * place_bytes(&"x".repeat(100)), "{}", live.bytes());
    }

    /// The log as first written (a map of the entries and a queue of ids), to check the
    /// present one against: same drops, joins, waiting entries and bytes.
    struct Reference {
        log: HashMap<String, (u64, Answered)>,
        order: VecDeque<(u64, String)>,
        seq: u64,
        capacity: usize,
        bytes_capacity: usize,
        bytes: usize,
    }

    impl Reference {
        fn log(&mut self, id: &str, answered: Answered) -> u64 {
            self.seq += 1;
            self.bytes += entry_bytes(id, &answered) + place_bytes(id);
            if let Some((_, old)) = self.log.insert(id.to_string(), (self.seq, answered)) {
                self.bytes -= entry_bytes(id, &old);
            }
            self.order.push_back((self.seq, id.to_string()));
            let mut evicted = 0;
            while self.order.len() > self.capacity || (self.bytes > self.bytes_capacity && self.order.len() > 1) {
                let (seq, id) = self.order.pop_front().unwrap();
                self.bytes -= place_bytes(&id);
                if self.log.get(&id).is_some_and(|(s, _)| *s == seq) {
                    let (_, old) = self.log.remove(&id).unwrap();
                    self.bytes -= entry_bytes(&id, &old);
                    evicted += 1;
                }
            }
            evicted
        }

        fn join(&mut self, id: &str) -> Option<Answered> {
            let (_, answered) = self.log.remove(id)?;
            self.bytes -= entry_bytes(id, &answered);
            Some(answered)
        }
    }

    #[test]
    fn the_log_drops_joins_and_replaces_as_a_map_of_entries_and_a_queue_of_ids_would() {
        for (capacity, bytes_capacity, ids) in [(50, 1 << 20, 120), (1000, 40 * 120, 120), (1, 1 << 20, 3), (5, 0, 8)] {
            let mut live = Live::new(capacity, bytes_capacity, 10, 10);
            let mut reference =
                Reference { log: HashMap::new(), order: VecDeque::new(), seq: 0, capacity, bytes_capacity, bytes: 0 };
            let mut state = 0x9e37_79b9_7f4a_7c15_u64;
            for step in 0..20_000 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // Ids of one to a few dozen characters, from a small set: replacements are common.
                let id = "k".repeat(1 + (state >> 40) as usize % 3) + &((state >> 8) % ids).to_string();
                if state.is_multiple_of(3) {
                    assert_eq!(live.join(&id, true), reference.join(&id), "join {id} at step {step}");
                } else {
                    // Versions and shadows of several lengths: each entry's bytes are its own.
                    let mut answered = Answered::baseline(
                        if state.is_multiple_of(5) { "v100" } else { "v1" },
                        (state % 97) as f64 / 97.0,
                        state.is_multiple_of(2),
                    );
                    if state.is_multiple_of(7) {
                        answered.role = Role::Canary;
                        answered.shadow =
                            Some(Shadow { version: "v2-shadow".into(), probability: 0.5, decision: true });
                    }
                    assert_eq!(
                        live.log(&id, answered.clone()),
                        reference.log(&id, answered),
                        "log {id} at step {step}"
                    );
                }
                assert_eq!(live.waiting(), reference.log.len(), "step {step}");
                assert_eq!(live.bytes(), reference.bytes, "step {step}");
            }
        }
    }

    #[test]
    fn the_window_measures_each_prediction_at_the_decision_answered() {
        let mut live = Live::new(100, 1 << 20, 3, 10);
        for (id, p, t) in [("a", 0.6, 0.7), ("b", 0.6, 0.5), ("c", 0.2, 0.5), ("d", 0.9, 0.5)] {
            live.log(id, Answered::baseline("v2", p, p >= t));
        }
        for (id, y) in [("a", true), ("b", true), ("c", false), ("d", false)] {
            live.join(id, y);
        }
        let f = live.figures("v2").unwrap();
        // The window keeps the last three: b (tp), c (tn), d (fp).
        assert_eq!(f.joined, 3);
        assert_eq!(f.values[0], Some(2.0 / 3.0));
        assert_eq!(f.values[1], Some(0.5));
        assert_eq!(f.values[2], Some(1.0));
        assert_eq!(f.values[5], Some(1.0 / 3.0));
        assert!(live.figures("v1").is_none());
    }
}
