//! Portico's configuration: the YAML model, `${VAR}` substitution, durations and sizes, and
//! validation that reports every error with its location.
//!
//! The control plane reads a file with [`load`]; the data plane never sees this crate's types
//! on the request path, only the snapshot compiled from them.

pub mod env;
pub mod error;
pub mod model;
pub mod otel;
pub mod parse;
pub mod tree;
pub mod units;
pub mod validate;

pub use error::{ConfigError, ConfigErrors};
pub use model::*;
pub use units::{Duration, Size};

use sha2::{Digest, Sha256};
use std::path::Path;

/// A parsed and validated configuration with the hash of the text it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// Hex SHA-256 of the file's bytes: a reload of identical bytes is a no-op.
    pub hash: String,
}

/// Parses and validates `text`, reading `${VAR}` from `env`.
pub fn from_str(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
    let config = parse::parse(text, env)?;
    validate::validate(&config).into_result(config)
}

/// Reads, parses and validates the file at `path` with the process environment.
pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
    let loaded = load_unvalidated(path)?;
    validate::validate(&loaded.config).into_result(loaded)
}

/// Reads and parses the file at `path` (structural errors only); the caller validates.
pub fn load_unvalidated(path: &Path) -> Result<Loaded, ConfigErrors> {
    let bytes =
        std::fs::read(path).map_err(|e| ConfigError::new(path.display().to_string(), format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| ConfigError::new(path.display().to_string(), "not UTF-8 text"))?;
    let config = parse::parse(&text, &|name| std::env::var(name).ok())?;
    Ok(Loaded {
        config,
        hash: hash_text(&text),
    })
}

/// Hex SHA-256 of a config text.
pub fn hash_text(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
