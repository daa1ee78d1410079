//! Portico's control plane: loads the config file, compiles it, and swaps the new snapshot
//! into the running data plane — at start, on SIGHUP, and when the file changes.
//!
//! A reload is all or nothing: any error leaves the old snapshot serving and is logged with
//! its location.

mod reload;
mod watch;

pub use reload::{Outcome, Reloader, compile, compile_next, load_and_compile};
pub use watch::watch_file;
