//! Portico's admin API: the control plane's window on a running gateway.
//!
//! It listens on `gateway.admin.address` (off when `gateway.admin` is absent) on a thread of
//! its own with its own current-thread runtime ([`bind`], [`Bound::serve`]): admin traffic
//! never runs on a request worker. Every answer reads the live snapshot
//! ([`portico_proxy::Snapshot::config`]), so it follows reloads.
//!
//! | method and path | |
//! |---|---|
//! | `GET /healthz` | no key; 200 `{"status": "ok", "config": {...}, "detail": {...}}` ([`Health`] adds detail) |
//! | `GET /metrics` | no key; Prometheus text (`text/plain; version=0.0.4`) |
//! | `GET /admin/routes`, `/admin/upstreams`, `/admin/consumers` | `{"routes": [...], "count", "hash"}`, items as in the YAML |
//! | `GET /admin/{kind}/{id}` | one item, as in the YAML (404 when unknown) |
//! | `PUT /admin/{kind}/{id}` | create or replace: body as in the YAML, JSON (400 with every error) |
//! | `DELETE /admin/{kind}/{id}` | delete (400 when something still uses it) |
//! | `GET /admin/upstreams/{id}/health` | each node: healthy or not and why, checks, circuit, in-flight |
//! | `GET /admin/config` | `{"hash", "config"}`: the whole running config, secrets masked ([`mask`]) |
//!
//! Every `/admin/*` call needs `X-API-Key` (compared in constant time, never logged; 401
//! otherwise). Errors are the gateway's JSON `{"message", "request_id"}`; unknown paths 404,
//! wrong methods 405 with `Allow`, bad JSON 400, bodies over 1 MiB 413.
//!
//! # Writes, and the store behind them
//!
//! A write is checked here and stored by a [`ConfigWriter`]:
//! 1. a read-only store ([`ConfigWriter::read_only`], as [`FileStore`] for
//!    `config_store: file`) answers 409 with its reason at once;
//! 2. the body is parsed as the YAML item is ([`edit::put`]): unknown fields refused, the id
//!    filled in from the path (or checked against it), masked secrets sent back unchanged
//!    restored from the stored item;
//! 3. the whole config that would result is validated and compiled
//!    ([`portico_proxy::validate_and_compile`]); any error answers 400 with every error,
//!    located by resource (`routes/r1.upstream: unknown upstream "u"`);
//! 4. only then [`ConfigWriter::put`] / [`ConfigWriter::delete`] store it, with the
//!    `If-Match` revision if the caller sent one. The store's answer maps to the status:
//!    [`WriteError::Conflict`] 409 (stale revision), [`WriteError::NotFound`] 404,
//!    [`WriteError::Invalid`] 400, [`WriteError::Unavailable`] 503; success 200 (201 when
//!    created) with `{"kind", "id", "revision", "item"}`.
//!
//! The admin API never swaps a snapshot itself: a store's watch applies the change through
//! the same compile-and-swap path as a file reload, on every node. A store implementation
//! plugs in where `portico run` builds the [`Admin`] (`src/main.rs`), and can run its own
//! checks with [`edit::check`] (for example on documents it loads: a bad one is refused
//! with located errors).

pub mod api;
mod auth;
pub mod edit;
mod healthz;
pub mod kind;
pub mod mask;
mod node_health;
mod reply;
mod server;
pub mod writer;

pub use api::{Admin, Live, Metrics};
pub use healthz::Health;
pub use kind::Kind;
pub use server::{Bound, Running, StartError, bind};
pub use writer::{ConfigWriter, FileStore, NoWrites, WriteError, WriteFuture, Written};
