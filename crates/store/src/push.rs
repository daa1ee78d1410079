//! `portico push`: make the store hold exactly a declarative file's resources.
//!
//! Read everything (one range get at revision R), diff against the file's documents (as the
//! text push writes them; a stored document spelled otherwise is compared as JSON), and
//! write the difference in ONE transaction that succeeds only if nothing under the prefix
//! changed since R and every key it touches is as read. A concurrent writer makes the push
//! fail with nothing written; run it again.

use crate::client::{Stored, connect, load};
use crate::document;
use crate::layout::{DEFAULT_PREFIX, Key, range_start};
use etcd_client::{Compare, CompareOp, DeleteOptions, Txn, TxnOp};
use portico_config::{Config, ConfigErrors, StoreKind, parse};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::Path;

/// What one resource's push does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Delete,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub action: Action,
    pub key: Key,
    /// The document to write (compact JSON); `None` for a delete.
    pub value: Option<String>,
    /// The stored version's mod revision; 0 for a create.
    pub mod_revision: i64,
}

impl Change {
    /// `would create route users-api`
    pub fn planned(&self) -> String {
        let verb = match self.action {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        };
        format!("would {verb} {}", self.key)
    }
}

impl fmt::Display for Change {
    /// `created route users-api`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.action {
            Action::Create => "created",
            Action::Update => "updated",
            Action::Delete => "deleted",
        };
        write!(f, "{verb} {}", self.key)
    }
}

/// The changes that turn `stored` into `desired`, in key order. A stored document that is not
/// valid JSON differs from any desired one. Each desired document is written out into one
/// reused buffer and compared there: only a changed one becomes a string of its own.
pub fn diff(desired: &BTreeMap<Key, &Value>, stored: &[Stored]) -> Vec<Change> {
    let stored: BTreeMap<&Key, &Stored> = stored.iter().map(|s| (&s.key, s)).collect();
    let mut changes = Vec::new();
    let mut text = Vec::new();
    let owned = |text: &[u8]| Some(String::from_utf8_lossy(text).into_owned());
    for (key, value) in desired {
        text.clear();
        document::write_text(value, &mut text);
        match stored.get(key) {
            None => changes.push(Change {
                action: Action::Create,
                key: key.clone(),
                value: owned(&text),
                mod_revision: 0,
            }),
            Some(s) if !same_document(&s.value, &text, value) => changes.push(Change {
                action: Action::Update,
                key: key.clone(),
                value: owned(&text),
                mod_revision: s.mod_revision,
            }),
            Some(_) => {}
        }
    }
    for (key, s) in stored {
        if !desired.contains_key(key) {
            changes.push(Change {
                action: Action::Delete,
                key: key.clone(),
                value: None,
                mod_revision: s.mod_revision,
            });
        }
    }
    changes.sort_by(|a, b| a.key.cmp(&b.key));
    changes
}

/// Whether a stored document is `desired`: the same text as push writes it (compact, keys
/// sorted: what push and the admin API store, so nearly always), else the same JSON value
/// once parsed (a document written by hand). `text` is `desired` as push writes it.
fn same_document(stored: &[u8], text: &[u8], desired: &Value) -> bool {
    stored == text || serde_json::from_slice::<Value>(stored).is_ok_and(|a| a == *desired)
}

/// The one transaction that applies `changes` if the store is still at `revision`.
pub fn transaction(prefix: &str, revision: i64, changes: &[Change]) -> Txn {
    let start = range_start(prefix);
    // Nothing under the prefix was created or modified after the read...
    let mut guards = vec![Compare::mod_revision(start.clone(), CompareOp::Less, revision + 1).with_prefix()];
    let mut ops = Vec::with_capacity(changes.len());
    for c in changes {
        let path = c.key.path(prefix);
        // ...and every key written or deleted is still as read (this also sees deletions).
        guards.push(match c.action {
            Action::Create => Compare::version(path.clone(), CompareOp::Equal, 0),
            Action::Update | Action::Delete => Compare::mod_revision(path.clone(), CompareOp::Equal, c.mod_revision),
        });
        ops.push(match &c.value {
            Some(v) => TxnOp::put(path, v.as_str(), None),
            None => TxnOp::delete(path, None::<DeleteOptions>),
        });
    }
    Txn::new().when(guards).and_then(ops)
}

/// What a push did.
#[derive(Debug)]
pub struct Pushed {
    pub changes: Vec<Change>,
    /// The store's revision after the write; `None` when nothing was written.
    pub revision: Option<i64>,
}

/// `portico push -c FILE [--dry-run]`: validates the file as `portico validate` does, pushes
/// it to the etcd store it names, and writes what changed to `out`.
///
/// Made for a process that ends when it returns: the file's tree and config (10,000 routes'
/// worth of small allocations) are left to the exit rather than freed one by one, which cost
/// a tenth of a push.
pub fn run(path: &Path, dry_run: bool, out: &mut dyn Write) -> Result<(), String> {
    let shown = path.display();
    let invalid = |errors: ConfigErrors| format!("invalid config {shown}:\n{}", indent(&errors));
    let (root, config) = read(path).map_err(invalid)?;
    let (root, config) = (&*Box::leak(Box::new(root)), &*Box::leak(Box::new(config)));
    let store = &config.gateway.config_store;
    if store.kind != StoreKind::Etcd {
        return Err(format!(
            "{shown} does not name a cluster store: set gateway.config_store to {{ type: etcd, endpoints: [...], prefix: ... }}"
        ));
    }
    let prefix = store.prefix.as_deref().unwrap_or(DEFAULT_PREFIX);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let desired = document::from_tree(root);
    let pushed = rt.block_on(push(&store.endpoints, prefix, &desired, dry_run))?;
    let write = |out: &mut dyn Write, line: String| writeln!(out, "{line}").map_err(|e| format!("cannot write: {e}"));
    for c in &pushed.changes {
        let line = if dry_run { c.planned() } else { c.to_string() };
        write(out, line)?;
    }
    let n = pushed.changes.len();
    let summary = match pushed.revision {
        _ if n == 0 => format!("no changes: {prefix} already holds {shown}"),
        _ if dry_run => format!("dry run: {n} change(s), nothing written"),
        Some(rev) => format!("pushed {n} change(s) to {prefix} (revision {rev})"),
        None => format!("pushed {n} change(s) to {prefix}"),
    };
    std::mem::forget(desired);
    write(out, summary)
}

/// The file's JSON tree (the documents to push) and its config, once the whole file is
/// checked as `portico validate` checks it. The YAML is read once for both.
fn read(path: &Path) -> Result<(Value, Config), ConfigErrors> {
    let one = |message: String| {
        let mut e = ConfigErrors::default();
        e.push(path.display().to_string(), message);
        e
    };
    let bytes = std::fs::read(path).map_err(|e| one(format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| one("not UTF-8 text".into()))?;
    let mut errors = ConfigErrors::default();
    let root = parse::tree(&text, &|name| std::env::var(name).ok(), &mut errors).ok_or_else(|| errors.clone())?;
    let config = parse::from_tree(&root, errors)?;
    portico_proxy::check(&config)?;
    Ok((root, config))
}

fn indent(errors: &ConfigErrors) -> String {
    errors.0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n")
}

/// Reads the store, diffs, and (unless `dry_run`) writes the difference in one transaction.
/// For a process that ends soon after, as [`run`]: the documents read are not freed.
pub async fn push(
    endpoints: &[String],
    prefix: &str,
    desired: &BTreeMap<Key, &Value>,
    dry_run: bool,
) -> Result<Pushed, String> {
    let mut client = connect(endpoints).await?;
    let (stored, revision) = load(&mut client, prefix).await?;
    let changes = diff(desired, &stored);
    // Like `run`'s tree: 10,000 documents left to the process exit, not freed one by one.
    std::mem::forget(stored);
    if dry_run || changes.is_empty() {
        return Ok(Pushed {
            changes,
            revision: None,
        });
    }
    let resp = client.txn(transaction(prefix, revision, &changes)).await.map_err(|e| {
        let hint = if e.to_string().contains("too many operations") {
            " (etcd's --max-txn-ops limits how many resources one push may change)"
        } else {
            ""
        };
        format!("cannot write to etcd: {e}{hint}; nothing was written")
    })?;
    if !resp.succeeded() {
        return Err(format!(
            "the store under {prefix} changed since it was read at revision {revision} \
             (a concurrent push or admin write); nothing was written: run push again"
        ));
    }
    Ok(Pushed {
        changes,
        revision: resp.header().map(|h| h.revision()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Kind;
    use serde_json::json;

    fn stored(kind: Kind, id: &str, value: &str, rev: i64) -> Stored {
        let key = Key::new(kind, id);
        Stored {
            full_key: key.path("/p"),
            key,
            value: value.as_bytes().to_vec(),
            mod_revision: rev,
        }
    }

    #[test]
    fn the_diff_creates_updates_and_deletes_by_json_value() {
        let desired: BTreeMap<Key, Value> = [
            (Key::new(Kind::Route, "same"), json!({"id": "same", "paths": ["/a"]})),
            (
                Key::new(Kind::Route, "as-pushed"),
                json!({"paths": ["/p"], "id": "as-pushed", "plugins": {"mock": {"body": "é\n"}}}),
            ),
            (
                Key::new(Kind::Route, "changed"),
                json!({"id": "changed", "paths": ["/b"]}),
            ),
            (Key::new(Kind::Route, "new"), json!({"id": "new", "paths": ["/c"]})),
            (Key::new(Kind::Upstream, "broken"), json!({"id": "broken", "nodes": []})),
        ]
        .into();
        let desired: BTreeMap<Key, &Value> = desired.iter().map(|(k, v)| (k.clone(), v)).collect();
        let stored = [
            // Spelled otherwise: the same JSON value, so no change.
            stored(Kind::Route, "same", r#"{ "paths": ["/a"],  "id": "same" }"#, 5),
            // As push writes it (compact, keys sorted): equal byte for byte.
            stored(
                Kind::Route,
                "as-pushed",
                r#"{"id":"as-pushed","paths":["/p"],"plugins":{"mock":{"body":"é\n"}}}"#,
                4,
            ),
            stored(Kind::Route, "changed", r#"{"id": "changed", "paths": ["/x"]}"#, 6),
            stored(Kind::Route, "gone", r#"{"id": "gone", "paths": ["/g"]}"#, 7),
            stored(Kind::Upstream, "broken", "{not json", 8),
        ];
        let got: Vec<String> = diff(&desired, &stored).iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "updated upstream broken",
                "updated route changed",
                "deleted route gone",
                "created route new"
            ]
        );
        let changes = diff(&desired, &stored);
        assert_eq!(changes[2].mod_revision, 7);
        assert_eq!(changes[3].mod_revision, 0);
        // What is written is the text a node keeps for it.
        assert_eq!(changes[3].value.as_deref(), Some(r#"{"id":"new","paths":["/c"]}"#));
    }
}
