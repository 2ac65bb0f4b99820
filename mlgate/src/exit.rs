//! The exit codes of every mlgate command, in one place.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success: the gate passed, monitoring healthy, the registry changed as asked; a rollout's analysis waiting for its step's pause, stepped or promoted |
//! | 1 | a decision said no: a gate failed, monitoring breached, a rollout aborted, the registry refused (deploy without a passing verdict, nothing to roll back to), `registry --check` found a problem, `import` refused a model it cannot score exactly |
//! | 2 | the user's to fix: bad flags, configuration or data; a service that could not be reached |
//! | 3 | inconclusive: `monitor --live` could judge nothing (no check measured, a check unmeasurable, or Prometheus sees another version served than production); recorded as such, the breach count unchanged, nothing rolled back. For a rollout: its step's pause is over but a check is not judged yet (too little feedback or traffic, no replica following it), or it moved while analysed; nothing changed |

use std::process::ExitCode;

/// How a command ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything as asked.
    Success = 0,
    /// A decision said no: gate failed, breach, refusal, inconsistency found.
    Refused = 1,
    /// A usage, configuration or data error (or an unreachable service).
    Usage = 2,
    /// The live analysis could judge nothing: neither healthy nor breached.
    Inconclusive = 3,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}
