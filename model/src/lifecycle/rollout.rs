//! A rollout in the registry: a candidate released beside production (its baseline) by canary
//! weights or as a shadow, step by step, until it is promoted or aborted.
//!
//! The open rollout is part of `state.json` ([`State::rollout`]) and every change to it is an
//! event of the history (`rollout_start`, `rollout_step`, `rollout_promote`, `rollout_abort`),
//! made under the registry's lock in its crash-consistent order, so that a remote registry
//! carries it as it carries a deploy. One rollout per registry (per model) is open at a time;
//! while it is open, `deploy` is refused (production moves through the rollout) and a rollback
//! closes it.

use crate::error::{Error, Result};
pub use crate::lifecycle::registry::Rollout;
use crate::lifecycle::registry::{Action, Actor, BreachMark, Event, Promotion, Registry, State, PRODUCTION, STAGING};
pub use crate::pipeline::rollout::{check_steps, RolloutMode, RolloutStep};

impl Registry {
    /// Opens a rollout of `candidate` (default: `staging`) against production, in `mode`, at
    /// the first of `steps`. Refused when no version is in production, a rollout is already
    /// open, the candidate is production, did not pass acceptance, is not the artifact its
    /// verdict judged, or is marked breached; and when the steps do not suit the mode.
    pub fn start_rollout(
        &self,
        candidate: Option<&str>,
        mode: RolloutMode,
        steps: Vec<RolloutStep>,
        actor: &Actor,
    ) -> Result<Rollout> {
        self.start_rollout_because(candidate, mode, steps, None, actor)
    }

    /// [`Registry::start_rollout`], with the reason the history records (default: what the
    /// rollout is).
    pub fn start_rollout_because(
        &self,
        candidate: Option<&str>,
        mode: RolloutMode,
        steps: Vec<RolloutStep>,
        reason: Option<&str>,
        actor: &Actor,
    ) -> Result<Rollout> {
        check_steps(mode, &steps, "rollout.steps").map_err(Error::Param)?;
        let lock = self.lock()?;
        let state = self.recover(&lock)?;
        if let Some(open) = &state.rollout {
            return Err(open.open_error());
        }
        let baseline = state.aliases.get(PRODUCTION).cloned().ok_or(Error::RolloutWithoutProduction)?;
        let candidate = match candidate {
            Some(v) => self.known_version(v)?,
            None => state.aliases.get(STAGING).cloned().ok_or(Error::NothingToRollOut)?,
        };
        if candidate == baseline {
            return Err(Error::RolloutOfProduction { version: candidate });
        }
        if let Some(mark) = state.breach_mark(&candidate) {
            return Err(Error::RolloutCandidateBreached { version: candidate, mark: mark.describe() });
        }
        self.judged_and_passed(&candidate)?;
        let rollout = Rollout {
            candidate: candidate.clone(),
            baseline: baseline.clone(),
            mode,
            weight: steps[0].weight,
            steps,
            step: 0,
            step_started: actor.when.clone(),
            started: actor.clone(),
            seq: state.seq + 1,
        };
        let reason = match reason.filter(|r| !r.trim().is_empty()) {
            Some(r) => format!("{}: {r}", rollout.describe()),
            None => format!("{} started", rollout.describe()),
        };
        let mut next = state.clone();
        next.rollout = Some(rollout.clone());
        self.commit(next, rollout_event(Action::RolloutStart, &rollout, reason, None, actor))?;
        Ok(rollout)
    }

    /// Refuses `version` as a rollout's candidate (or promotion) unless its verdict passed and
    /// its artifact is the one the verdict judged.
    fn judged_and_passed(&self, version: &str) -> Result<()> {
        let verdict = self.verdict(version)?;
        let actual = self.artifact(version)?.checksum();
        if actual != verdict.artifact_sha256 {
            return Err(Error::NotTheJudgedArtifact {
                version: version.to_string(),
                actual,
                judged: verdict.artifact_sha256,
            });
        }
        if !verdict.passed {
            return Err(Error::RolloutVerdictFailed { version: version.to_string(), failed: verdict.failed });
        }
        Ok(())
    }

    /// The open rollout, or the refusal that there is none.
    fn open_rollout(state: &State) -> Result<Rollout> {
        state.rollout.clone().ok_or(Error::NoRollout)
    }

    /// Moves the open rollout from step `expected_step` (its index) to the next one: its weight
    /// is the candidate's share from now on. A compare-and-swap: refused when the rollout is not
    /// at `expected_step` (another writer moved it) or is at its last step (promote ends it).
    pub fn step_rollout(&self, expected_step: usize, reason: &str, actor: &Actor) -> Result<Rollout> {
        let lock = self.lock()?;
        let state = self.recover(&lock)?;
        let mut rollout = Self::open_rollout(&state)?;
        if rollout.step != expected_step {
            return Err(Error::RolloutStepMoved {
                rollout: rollout.describe(),
                expected: expected_step + 1,
                actual: rollout.step + 1,
            });
        }
        if rollout.is_last_step() {
            return Err(Error::RolloutLastStep { rollout: rollout.describe() });
        }
        rollout.step += 1;
        rollout.weight = rollout.current().weight;
        rollout.step_started = actor.when.clone();
        let mut next = state.clone();
        next.rollout = Some(rollout.clone());
        let reason = format!("{}: {reason}", rollout.describe());
        self.commit(next, rollout_event(Action::RolloutStep, &rollout, reason, None, actor))?;
        Ok(rollout)
    }

    /// Closes the open rollout by putting its candidate in production (at whatever step it is:
    /// the analysis promotes after the last, a person may promote earlier). The candidate's
    /// artifact must still be the one its verdict judged.
    pub fn promote_rollout(&self, reason: &str, actor: &Actor) -> Result<Promotion> {
        let lock = self.lock()?;
        let state = self.recover(&lock)?;
        let rollout = Self::open_rollout(&state)?;
        self.judged_and_passed(&rollout.candidate)?;
        let current = state.aliases.get(PRODUCTION).cloned();
        let mut next = state.clone();
        next.rollout = None;
        next.aliases.insert(PRODUCTION.into(), rollout.candidate.clone());
        if let Some(c) = current.as_ref().filter(|c| **c != rollout.candidate) {
            next.previous_productions.push(c.clone());
        }
        next.consecutive_breaches = 0;
        let mut event = rollout_event(
            Action::RolloutPromote,
            &rollout,
            format!("{} promoted: {reason}", rollout.describe()),
            None,
            actor,
        );
        event.from = current.clone();
        self.commit(next, event)?;
        Ok(Promotion { deployed: rollout.candidate, replaced: current, changed: true })
    }

    /// Closes the open rollout and leaves production as it is: all traffic goes back to the
    /// baseline. With `mark_breached` (an abort on evidence), the candidate is marked breached in
    /// the same event and `staging` leaves it. Returns the rollout as it was when closed.
    pub fn abort_rollout(&self, reason: &str, mark_breached: bool, actor: &Actor) -> Result<Rollout> {
        let lock = self.lock()?;
        let state = self.recover(&lock)?;
        let rollout = Self::open_rollout(&state)?;
        let mut next = state.clone();
        next.rollout = None;
        let reason = format!("{} aborted: {reason}", rollout.describe());
        let breached = mark_breached.then(|| rollout.candidate.clone());
        if mark_breached {
            let candidate = &rollout.candidate;
            let unstaged = next.aliases.get(STAGING) == Some(candidate);
            if unstaged {
                next.aliases.remove(STAGING);
            }
            next.breached.retain(|m| m.version != *candidate);
            let mark =
                BreachMark { version: candidate.clone(), reason: reason.clone(), unstaged, actor: actor.clone() };
            next.breached.push(mark);
        }
        self.commit(next, rollout_event(Action::RolloutAbort, &rollout, reason, breached, actor))?;
        Ok(rollout)
    }
}

/// A rollout's event: `from` the baseline, `to` the candidate, the rollout attached.
fn rollout_event(action: Action, rollout: &Rollout, reason: String, breached: Option<String>, actor: &Actor) -> Event {
    Event {
        seq: 0,
        action,
        from: Some(rollout.baseline.clone()),
        to: Some(rollout.candidate.clone()),
        reason,
        forced: false,
        version: None,
        breached,
        rollout: Some(rollout.clone()),
        actor: actor.clone(),
    }
}
