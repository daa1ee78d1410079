//! The local copy of the last applied config, for a node that starts while etcd is down.
//!
//! Written after every applied change, atomically (a temporary file in the same directory,
//! synced, then renamed over the old one), readable only by its owner: it holds consumer
//! credentials as etcd does.

use crate::layout::Key;
use crate::state::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheFile {
    /// The prefix the documents were read under: a cache of another prefix is not used.
    prefix: String,
    /// The etcd revision the documents are at.
    revision: i64,
    /// Full etcd key → document.
    documents: BTreeMap<String, Value>,
}

/// The default cache path: beside the config file, named after it.
pub fn default_path(config: &Path) -> PathBuf {
    let name = config
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    config.with_file_name(format!("{name}.etcd-cache.json"))
}

/// Writes `state` at `revision` to `path`, replacing the old cache in one step.
pub fn write(path: &Path, prefix: &str, revision: i64, state: &State) -> std::io::Result<()> {
    let text = render(prefix, revision, state)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = open_private(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The cache file's JSON, with each document's text as the state keeps it (not serialized
/// again): a [`CacheFile`].
fn render(prefix: &str, revision: i64, state: &State) -> std::io::Result<Vec<u8>> {
    let string = |s: &str| serde_json::to_string(s).map_err(std::io::Error::other);
    let mut out = Vec::with_capacity(64 + state.docs().map(|(_, e)| e.text.len() + 64).sum::<usize>());
    out.extend_from_slice(
        format!(
            "{{\"prefix\":{},\"revision\":{revision},\"documents\":{{",
            string(prefix)?
        )
        .as_bytes(),
    );
    for (i, (key, entry)) in state.docs().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(string(&key.path(prefix))?.as_bytes());
        out.push(b':');
        out.extend_from_slice(entry.text.as_bytes());
    }
    out.extend_from_slice(b"}}");
    Ok(out)
}

fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Reads the cache at `path` written for `prefix`: its state and revision.
pub fn read(path: &Path, prefix: &str) -> Result<(State, i64), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: CacheFile =
        serde_json::from_slice(&bytes).map_err(|e| format!("{} is not a Portico cache: {e}", path.display()))?;
    if file.prefix != prefix {
        return Err(format!(
            "{} holds prefix {:?}, not {prefix:?}",
            path.display(),
            file.prefix
        ));
    }
    let kvs = file.documents.into_iter().filter_map(|(full, value)| {
        let key = Key::parse(prefix, full.as_bytes())?;
        Some((key, value.to_string().into_bytes(), full))
    });
    Ok((State::default().reloaded(kvs), file.revision))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Kind;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_cache_round_trips_privately_and_only_for_its_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = default_path(&dir.path().join("portico.yaml"));
        assert!(path.ends_with("portico.yaml.etcd-cache.json"));
        let mut s = State::default();
        s.put(
            Key::new(Kind::Route, "r"),
            br#"{"paths": ["/r"], "plugins": {"mock": {}}}"#,
            "k",
        );
        write(&path, "/p", 7, &s).unwrap();
        write(&path, "/p", 8, &s).unwrap();
        let (back, revision) = read(&path, "/p").unwrap();
        assert_eq!(revision, 8);
        assert_eq!(back.len(), 1);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(read(&path, "/q").unwrap_err().contains("prefix"));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }
}
