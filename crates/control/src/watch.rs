//! Watching the config file, and the certificate and key files it names, for changes by
//! polling their metadata.
//!
//! Polling (every 250 ms) rather than inotify: it sees every way editors and deploy tools
//! replace a file (in place, by rename, through a symlink swap as Kubernetes ConfigMaps do),
//! costs one `stat` per tick, and needs no platform-specific code.

use crate::reload::Reloader;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const INTERVAL: Duration = Duration::from_millis(250);

/// What identifies one version of the file without reading it.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Stamp {
    modified_ns: i64,
    len: u64,
    inode: u64,
}

fn stamp(m: &Metadata) -> Stamp {
    Stamp {
        modified_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        len: m.len(),
        inode: m.ino(),
    }
}

/// The stamps of the config file (first) and of the files the served config read.
fn stamps(config: &Path, others: &[PathBuf]) -> Vec<Option<Stamp>> {
    std::iter::once(config)
        .chain(others.iter().map(PathBuf::as_path))
        .map(|p| std::fs::metadata(p).ok().map(|m| stamp(&m)))
        .collect()
}

/// Reloads whenever the file's stamp (or a certificate's) changes, until `stop` turns true.
pub async fn watch_file(reloader: Arc<Reloader>, mut stop: watch::Receiver<bool>) {
    let path = reloader.path().to_owned();
    let mut others = reloader.watched_files();
    // Nothing seen yet: the first tick reloads, which is a no-op unless the files changed
    // between the load that started the gateway and now (a change a first stat would hide).
    let mut last = Vec::new();
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let now = stamps(&path, &others);
        if now[0].is_some() && now != last {
            last = now;
            let r = reloader.clone();
            let _ = tokio::task::spawn_blocking(move || r.reload("file change")).await;
            // The new config may name other certificates.
            let files = reloader.watched_files();
            if files != others {
                others = files;
                last = stamps(&path, &others);
            }
        }
    }
}
