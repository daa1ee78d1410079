//! A gateway node in etcd mode: boot from etcd (or the local cache), then follow every change.
//!
//! Changes are applied through the same validate-compile-swap as a file reload, at most every
//! [`COALESCE`] (a burst of writes compiles once). When etcd goes away the node keeps serving
//! what it has, reconnects with backoff, and on reconnect reads everything again before it
//! watches again, so it catches up on whatever it missed (compactions included).

use crate::cache;
use crate::client::{connect, load};
use crate::layout::{Key, range_start};
use crate::state::State;
use crate::status::{Source, Status};
use etcd_client::{Client, EventType, WatchOptions};
use portico_config::{ConfigErrors, Gateway, StoreKind};
use portico_control::{Outcome, Reloader};
use portico_proxy::Snapshot;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// The shortest time between two applies.
pub const COALESCE: Duration = Duration::from_millis(100);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// One node's view of its store.
pub struct Node {
    endpoints: Vec<String>,
    prefix: String,
    /// The local file's `gateway` section: listeners, workers, ... are never in etcd.
    gateway: Gateway,
    cache: PathBuf,
    status: Arc<Status>,
    resync: Notify,
}

/// What a node starts serving: the snapshot, and where [`Node::run`] takes over.
pub struct Boot {
    pub snapshot: Snapshot,
    pub resume: Resume,
}

/// The documents and revision a node booted with.
pub struct Resume {
    state: State,
    revision: i64,
}

impl Node {
    /// A node for a file whose `gateway.config_store` is etcd (`None` otherwise).
    pub fn for_file(config_path: &Path, gateway: &Gateway) -> Option<Node> {
        let store = &gateway.config_store;
        if store.kind != StoreKind::Etcd {
            return None;
        }
        let prefix = store.prefix.clone().unwrap_or_else(|| crate::DEFAULT_PREFIX.to_owned());
        Some(Node {
            endpoints: store.endpoints.clone(),
            status: Arc::new(Status::new(&prefix, Source::Etcd, 0)),
            prefix,
            gateway: gateway.clone(),
            cache: store
                .cache
                .as_ref()
                .map_or_else(|| cache::default_path(config_path), PathBuf::from),
            resync: Notify::new(),
        })
    }

    /// Where the admin API's writes go: this node's store.
    pub fn writer(&self) -> crate::EtcdWriter {
        crate::EtcdWriter::new(self.endpoints.clone(), self.prefix.clone())
    }

    pub fn status(&self) -> Arc<Status> {
        self.status.clone()
    }

    /// Asks the sync loop to read everything again (SIGHUP).
    pub fn resync(&self) {
        self.resync.notify_one();
    }

    /// The config to start with: etcd's, else the cache's. An error says why neither serves.
    pub async fn boot(&self) -> Result<Boot, ConfigErrors> {
        let from_etcd = async {
            let mut client = connect(&self.endpoints).await?;
            load(&mut client, &self.prefix).await
        };
        let etcd_problem = match from_etcd.await {
            Ok((stored, revision)) => {
                let state = State::default().reloaded(stored.into_iter().map(|s| (s.key, s.value, s.full_key)));
                match portico_control::compile(state.to_loaded(&self.gateway)) {
                    Ok((loaded, snapshot)) => {
                        self.save(&state, revision);
                        self.status.update(|d| d.revision = revision);
                        tracing::info!(target: "portico::store", prefix = %self.prefix, revision, documents = state.len(), "config read from etcd");
                        let _ = loaded;
                        return Ok(Boot {
                            snapshot,
                            resume: Resume { state, revision },
                        });
                    }
                    Err(errors) => {
                        let locate = state.locator(&self.prefix);
                        for e in &errors.0 {
                            tracing::error!(target: "portico::store", location = %locate(&e.location), "{}", e.message);
                        }
                        format!(
                            "the config in etcd at revision {revision} is invalid ({} errors)",
                            errors.0.len()
                        )
                    }
                }
            }
            Err(e) => e,
        };
        let cached = cache::read(&self.cache, &self.prefix).and_then(|(state, revision)| {
            portico_control::compile(state.to_loaded(&self.gateway))
                .map(|(_, snapshot)| Boot {
                    snapshot,
                    resume: Resume { state, revision },
                })
                .map_err(|errors| format!("the cached config is invalid: {errors}"))
        });
        match cached {
            Ok(boot) => {
                tracing::warn!(
                    target: "portico::store",
                    cache = %self.cache.display(),
                    revision = boot.resume.revision,
                    "{etcd_problem}: serving the cached config; the node catches up when etcd answers"
                );
                self.status.update(|d| {
                    d.serving_from = Source::Cache;
                    d.connected = false;
                    d.revision = boot.resume.revision;
                    d.error = Some(etcd_problem);
                });
                Ok(boot)
            }
            Err(cache_problem) => {
                let mut errors = ConfigErrors::default();
                errors.push(
                    "gateway.config_store",
                    format!("{etcd_problem}; no cached config to serve instead: {cache_problem}"),
                );
                Err(errors)
            }
        }
    }

    /// Follows etcd until `stop` turns true, applying every change through `reloader`.
    pub async fn run(self: Arc<Self>, reloader: Arc<Reloader>, resume: Resume, mut stop: watch::Receiver<bool>) {
        // Shared with the apply task (no copy of 10,000 documents per change); a change after
        // the apply finished writes in place again.
        let (mut state, mut revision) = (Arc::new(resume.state), resume.revision);
        let mut from_etcd = self.status.detail().serving_from == Source::Etcd;
        let mut backoff = BACKOFF_MIN;
        loop {
            let result = async {
                let mut client = connect(&self.endpoints).await?;
                if !from_etcd {
                    let (stored, rev) = load(&mut client, &self.prefix).await?;
                    state = Arc::new(state.reloaded(stored.into_iter().map(|s| (s.key, s.value, s.full_key))));
                    revision = rev;
                    self.apply(&reloader, &state, revision, "etcd resync").await;
                }
                from_etcd = false;
                self.follow(
                    &mut client,
                    &reloader,
                    &mut state,
                    &mut revision,
                    &mut stop,
                    &mut backoff,
                )
                .await
            }
            .await;
            let problem = match result {
                Ok(()) => return,
                Err(problem) => problem,
            };
            // Said once when etcd goes away, once more when retries reach their slowest pace.
            if backoff == BACKOFF_MIN || (backoff < BACKOFF_MAX && backoff * 2 >= BACKOFF_MAX) {
                tracing::warn!(target: "portico::store", retry_in = ?backoff, "{problem}; serving the last applied config");
            } else {
                tracing::debug!(target: "portico::store", retry_in = ?backoff, "{problem}");
            }
            self.status.update(|d| {
                d.connected = false;
                d.error = Some(problem);
            });
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stopped(&mut stop) => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Watches from `revision + 1`, applying changes; returns `Ok` when stopped, `Err` when
    /// the watch is lost (then everything is read again).
    async fn follow(
        &self,
        client: &mut Client,
        reloader: &Arc<Reloader>,
        state: &mut Arc<State>,
        revision: &mut i64,
        stop: &mut watch::Receiver<bool>,
        backoff: &mut Duration,
    ) -> Result<(), String> {
        let options = WatchOptions::new().with_prefix().with_start_revision(*revision + 1);
        let mut stream = client
            .watch(range_start(&self.prefix), Some(options))
            .await
            .map_err(|e| format!("cannot watch etcd: {e}"))?;
        let mut last_apply = Instant::now() - COALESCE;
        let mut due: Option<Instant> = None;
        loop {
            let apply_at = due.unwrap_or_else(Instant::now);
            tokio::select! {
                msg = stream.message() => {
                    let resp = match msg {
                        Ok(Some(resp)) => resp,
                        Ok(None) => return Err("etcd closed the watch".into()),
                        Err(e) => return Err(format!("lost etcd: {e}")),
                    };
                    if resp.canceled() {
                        return Err(format!("etcd cancelled the watch: {} (compacted at {})", resp.cancel_reason(), resp.compact_revision()));
                    }
                    if resp.created() {
                        *backoff = BACKOFF_MIN;
                        self.status.update(|d| {
                            d.connected = true;
                            d.error = None;
                        });
                        tracing::info!(target: "portico::store", prefix = %self.prefix, revision = *revision, "watching etcd");
                    }
                    let mut changed = false;
                    for ev in resp.events() {
                        let Some(kv) = ev.kv() else { continue };
                        let Some(key) = Key::parse(&self.prefix, kv.key()) else { continue };
                        changed |= match ev.event_type() {
                            EventType::Put => Arc::make_mut(state).put(key, kv.value(), &String::from_utf8_lossy(kv.key())),
                            EventType::Delete => Arc::make_mut(state).remove(&key),
                        };
                    }
                    if let Some(h) = resp.header() {
                        *revision = (*revision).max(h.revision());
                    }
                    if changed && due.is_none() {
                        due = Some((last_apply + COALESCE).max(Instant::now()));
                    }
                }
                _ = tokio::time::sleep_until(apply_at), if due.is_some() => {
                    due = None;
                    self.apply(reloader, state, *revision, "etcd change").await;
                    last_apply = Instant::now();
                }
                _ = self.resync.notified() => return Err("resync asked for (SIGHUP)".into()),
                _ = stopped(stop) => return Ok(()),
            }
        }
    }

    /// Validates, compiles and swaps `state` in (off the async thread), then caches it.
    async fn apply(&self, reloader: &Arc<Reloader>, state: &Arc<State>, revision: i64, trigger: &'static str) {
        let (reloader, state) = (reloader.clone(), state.clone());
        let (gateway, prefix, cache_path) = (self.gateway.clone(), self.prefix.clone(), self.cache.clone());
        let outcome = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let locate = state.locator(&prefix);
            let outcome = reloader.apply(state.to_loaded(&gateway), trigger, &locate);
            if outcome == Outcome::Applied {
                tracing::info!(
                    target: "portico::store",
                    revision,
                    documents = state.len(),
                    compile_ms = started.elapsed().as_millis() as u64,
                    "etcd revision applied"
                );
            }
            if outcome == Outcome::Applied
                && let Err(e) = cache::write(&cache_path, &prefix, revision, &state)
            {
                tracing::warn!(target: "portico::store", cache = %cache_path.display(), "cannot write the config cache: {e}");
            }
            outcome
        })
        .await
        .unwrap_or(Outcome::Refused);
        self.status.update(|d| match outcome {
            Outcome::Applied | Outcome::Unchanged => {
                d.serving_from = Source::Etcd;
                d.revision = revision;
                d.error = None;
            }
            Outcome::Refused => {
                d.error = Some(format!(
                    "the config in etcd at revision {revision} was refused (see the log); revision {} keeps serving",
                    d.revision
                ));
            }
        });
    }

    fn save(&self, state: &State, revision: i64) {
        if let Err(e) = cache::write(&self.cache, &self.prefix, revision, state) {
            tracing::warn!(target: "portico::store", cache = %self.cache.display(), "cannot write the config cache: {e}");
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
