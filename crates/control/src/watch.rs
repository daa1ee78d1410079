//! Watching the config file for changes by polling its metadata.
//!
//! Polling (every 250 ms) rather than inotify: it sees every way editors and deploy tools
//! replace a file (in place, by rename, through a symlink swap as Kubernetes ConfigMaps do),
//! costs one `stat` per tick, and needs no platform-specific code.

use crate::reload::Reloader;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
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

/// Reloads whenever the file's stamp changes, until `stop` turns true.
pub async fn watch_file(reloader: Arc<Reloader>, mut stop: watch::Receiver<bool>) {
    let path = reloader.path().to_owned();
    let mut last = std::fs::metadata(&path).ok().map(|m| stamp(&m));
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let now = std::fs::metadata(&path).ok().map(|m| stamp(&m));
        if now.is_some() && now != last {
            last = now;
            let r = reloader.clone();
            let _ = tokio::task::spawn_blocking(move || r.reload("file change")).await;
        }
    }
}
