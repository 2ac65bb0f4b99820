//! A registry in a folder: the library's registry works on it directly; a change is durable when
//! the library has written it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use model::lifecycle::registry::Actor;

use super::{Backend, Counters};

/// A folder registry.
pub struct Folder {
    root: PathBuf,
    /// The bytes of `state.json` at the last reading, to tell when it moved.
    state: Option<Vec<u8>>,
    counters: Arc<Counters>,
}

impl Folder {
    /// The registry in `root` (created by its first write).
    pub fn open(root: PathBuf) -> Folder {
        let state = std::fs::read(root.join("state.json")).ok();
        let counters = Arc::new(Counters::default());
        Counters::add(&counters.state_reads);
        Folder { root, state, counters }
    }
}

impl Backend for Folder {
    fn root(&self) -> &Path {
        &self.root
    }

    fn refresh(&mut self) -> Result<bool> {
        let now = std::fs::read(self.root.join("state.json")).ok();
        if now == self.state {
            return Ok(false);
        }
        self.state = now;
        Counters::add(&self.counters.state_reads);
        Ok(true)
    }

    fn reset(&mut self) -> Result<()> {
        self.refresh().map(|_| ())
    }

    fn publish(&mut self, _actor: &Actor, _message: &str, _notice: fn(&str)) -> Result<bool> {
        // The library wrote the change under the folder's lock: it is made.
        self.state = std::fs::read(self.root.join("state.json")).ok();
        Ok(true)
    }

    fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }
}
