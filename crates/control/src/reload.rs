//! Parse, validate, compile, swap.

use portico_config::{ConfigErrors, Gateway, Loaded};
use portico_proxy::{Running, Snapshot};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Reads, validates and compiles the file at `path`, reporting every error at once.
pub fn load_and_compile(path: &Path) -> Result<(Loaded, Snapshot), ConfigErrors> {
    compile(portico_config::load_unvalidated(path)?)
}

/// Validates and compiles a parsed config, wherever it came from (a file, the cluster store).
pub fn compile(loaded: Loaded) -> Result<(Loaded, Snapshot), ConfigErrors> {
    compile_next(loaded, None)
}

/// [`compile`], taking from `previous` (the snapshot being served) what did not change.
pub fn compile_next(loaded: Loaded, previous: Option<&Snapshot>) -> Result<(Loaded, Snapshot), ConfigErrors> {
    let snapshot = portico_proxy::validate_and_compile_next(&loaded.config, &loaded.hash, previous)?;
    Ok((loaded, snapshot))
}

/// What of the listeners is fixed at start: their addresses, and which serve TLS.
fn bound(listeners: &[portico_config::Listener]) -> Vec<(&str, bool)> {
    listeners
        .iter()
        .map(|l| (l.address.as_str(), l.tls.is_some()))
        .collect()
}

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// The file's bytes are the ones already served.
    Unchanged,
    /// The new config is invalid; the old one keeps serving.
    Refused,
}

/// Reloads one config file into one running gateway. Reloads are serialized.
pub struct Reloader {
    path: PathBuf,
    running: Arc<Running>,
    /// The `gateway` section that was started: listeners and workers need a restart to change.
    started: Gateway,
    lock: Mutex<()>,
}

/// How long a replaced snapshot is held off the request path: by then the workers have moved
/// on from it (at their next request), so it is freed here, not by a worker between two
/// requests. Not longer: what it holds (an active health checker of a removed upstream) should
/// not outlive it by much.
const RETIRE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

impl Reloader {
    pub fn new(path: PathBuf, running: Arc<Running>, started: Gateway) -> Self {
        Self {
            path,
            running,
            started,
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The other files the served config read (TLS certificates and keys): changing one is
    /// changing the config.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        self.running.watched_files()
    }

    /// Applies the file if it changed and is valid; logs what happened and why.
    pub fn reload(&self, trigger: &'static str) -> Outcome {
        let _serial = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.swap_in(portico_config::load_unvalidated(&self.path), trigger, &|at| {
            at.to_owned()
        })
    }

    /// Applies a config that came from elsewhere (the cluster store) through the same
    /// validate, compile and swap as a file reload. `locate` turns an error's location
    /// (`routes[3].upstream`) into where the user finds it (the store key).
    pub fn apply(&self, loaded: Loaded, trigger: &'static str, locate: &dyn Fn(&str) -> String) -> Outcome {
        let _serial = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.swap_in(Ok(loaded), trigger, locate)
    }

    fn swap_in(
        &self,
        loaded: Result<Loaded, ConfigErrors>,
        trigger: &'static str,
        locate: &dyn Fn(&str) -> String,
    ) -> Outcome {
        let serving = self.running.snapshot();
        let (loaded, snapshot) = match loaded.and_then(|l| compile_next(l, Some(&serving))) {
            Ok(ok) => ok,
            Err(errors) => {
                for e in &errors.0 {
                    tracing::error!(target: "portico::reload", location = %locate(&e.location), "{}", e.message);
                }
                tracing::error!(
                    target: "portico::reload",
                    trigger,
                    errors = errors.0.len(),
                    "config refused; the previous config keeps serving"
                );
                portico_proxy::metrics::count_reload(false);
                return Outcome::Refused;
            }
        };
        // The snapshot's hash covers the file and the certificates it names.
        if snapshot.hash == self.running.hash() {
            return Outcome::Unchanged;
        }
        self.warn_restart_only(&loaded.config.gateway);
        let hash = snapshot.hash.clone();
        self.running.swap(snapshot);
        retire(serving);
        portico_proxy::metrics::count_reload(true);
        tracing::info!(target: "portico::reload", trigger, hash = %hash, "config applied");
        Outcome::Applied
    }

    fn warn_restart_only(&self, new: &Gateway) {
        let old = &self.started;
        for (name, changed) in [
            // Certificates reload; addresses, and whether one serves TLS, take a restart.
            ("listeners", bound(&old.listeners) != bound(&new.listeners)),
            ("workers", old.workers != new.workers),
            ("access_log", old.access_log != new.access_log),
            ("shutdown_timeout", old.shutdown_timeout != new.shutdown_timeout),
            ("tracing", old.tracing != new.tracing),
        ] {
            if changed {
                tracing::warn!(target: "portico::reload", "gateway.{name} changed: it takes effect after a restart");
            }
        }
    }
}

/// Drops `replaced` on a thread of its own after [`RETIRE_AFTER`] (here at once if no thread
/// can be started: the refused closure is dropped with it).
fn retire(replaced: Arc<Snapshot>) {
    let _ = std::thread::Builder::new()
        .name("portico-retire".into())
        .spawn(move || {
            std::thread::sleep(RETIRE_AFTER);
            drop(replaced);
        });
}
