//! Where admin API writes go: the [`ConfigWriter`] a config store implements.
//!
//! The admin API does everything a write needs except storing it: it authenticates the
//! caller, parses the body with the same per-item deserialization as the YAML file, puts
//! back any masked secret the caller sent back unchanged, and validates and compiles the
//! whole config that would result ([`crate::edit`]). Only a write that passed all of that
//! reaches [`ConfigWriter::put`] or [`ConfigWriter::delete`]; the store then persists it, and
//! its watch applies it to every gateway through the same compile-and-swap path as a file
//! reload (the admin API never swaps a snapshot itself).

use crate::kind::Kind;
use portico_config::ConfigErrors;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

/// What a store answers to one write.
pub type WriteFuture<'a> = Pin<Box<dyn Future<Output = Result<Written, WriteError>> + Send + 'a>>;

/// A config store that takes writes from the admin API. `Send + Sync`: the admin thread holds
/// it behind an `Arc` and calls it from its own runtime.
///
/// `expected` is the store revision the caller based its write on (the request's `If-Match`
/// header, a decimal number, when it sent one): a store refuses with [`WriteError::Conflict`]
/// when the resource changed since, so that concurrent writers never silently overwrite
/// each other. `None`: write unconditionally.
pub trait ConfigWriter: Send + Sync + 'static {
    /// Why this store takes no writes at all (answered with 409 before any validation), or
    /// `None` when it does. Default `None`.
    fn read_only(&self) -> Option<String> {
        None
    }

    /// Creates or replaces `kind`/`id` with `item`: the request body as JSON, an object of
    /// the same shape as the YAML item, its id field set to `id`, masked secrets already put
    /// back. The whole resulting config was validated and compiled against the live config.
    fn put<'a>(
        &'a self,
        kind: Kind,
        id: &'a str,
        item: &'a serde_json::Value,
        expected: Option<u64>,
    ) -> WriteFuture<'a>;

    /// Deletes `kind`/`id` (the resulting config was validated: nothing uses it any more).
    fn delete<'a>(&'a self, kind: Kind, id: &'a str, expected: Option<u64>) -> WriteFuture<'a>;
}

/// A write the store accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// The store's revision after the write, when it has revisions (etcd's mod revision).
    pub revision: Option<u64>,
    /// A PUT created the item (201) rather than replacing it (200).
    pub created: bool,
}

/// Why a store refused a write; the admin API maps each to a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// The store takes no writes (409).
    ReadOnly(String),
    /// The resource changed since `expected` (409): read it again and retry.
    Conflict(String),
    /// Nothing to delete (404).
    NotFound(String),
    /// The store checked the write against what it holds and found errors (400).
    Invalid(ConfigErrors),
    /// The store cannot be reached now (503); nothing was written.
    Unavailable(String),
}

impl WriteError {
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            WriteError::ReadOnly(_) | WriteError::Conflict(_) => S::CONFLICT,
            WriteError::NotFound(_) => S::NOT_FOUND,
            WriteError::Invalid(_) => S::BAD_REQUEST,
            WriteError::Unavailable(_) => S::SERVICE_UNAVAILABLE,
        }
    }
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::ReadOnly(m) | WriteError::Conflict(m) | WriteError::NotFound(m) => f.write_str(m),
            WriteError::Unavailable(m) => write!(f, "config store unavailable: {m}"),
            WriteError::Invalid(e) => write!(f, "invalid config: {e}"),
        }
    }
}

/// `config_store: file`: the config is code, so every write is refused with a pointer to the file.
#[derive(Debug, Clone)]
pub struct FileStore {
    pub path: PathBuf,
}

impl FileStore {
    fn refusal(&self) -> String {
        format!(
            "config_store is file: the config is read from {}; edit it there (it is reloaded on change or SIGHUP)",
            self.path.display()
        )
    }
}

impl ConfigWriter for FileStore {
    fn read_only(&self) -> Option<String> {
        Some(self.refusal())
    }

    fn put<'a>(&'a self, _: Kind, _: &'a str, _: &'a serde_json::Value, _: Option<u64>) -> WriteFuture<'a> {
        let refusal = self.refusal();
        Box::pin(async move { Err(WriteError::ReadOnly(refusal)) })
    }

    fn delete<'a>(&'a self, _: Kind, _: &'a str, _: Option<u64>) -> WriteFuture<'a> {
        let refusal = self.refusal();
        Box::pin(async move { Err(WriteError::ReadOnly(refusal)) })
    }
}

/// A store that takes no writes through the admin API, for the reason given (409).
#[derive(Debug, Clone)]
pub struct NoWrites(pub String);

impl ConfigWriter for NoWrites {
    fn read_only(&self) -> Option<String> {
        Some(self.0.clone())
    }

    fn put<'a>(&'a self, _: Kind, _: &'a str, _: &'a serde_json::Value, _: Option<u64>) -> WriteFuture<'a> {
        Box::pin(async move { Err(WriteError::ReadOnly(self.0.clone())) })
    }

    fn delete<'a>(&'a self, _: Kind, _: &'a str, _: Option<u64>) -> WriteFuture<'a> {
        Box::pin(async move { Err(WriteError::ReadOnly(self.0.clone())) })
    }
}
