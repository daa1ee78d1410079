//! `policy: redis`: one limit shared by every gateway node on the same Redis.
//!
//! Workers are separate current-thread runtimes, and a Redis connection is driven by the
//! runtime that made it. So the connection lives on a thread of its own (one per distinct
//! `gateway.redis`, started on first use and kept across reloads): workers hand it a job over
//! a bounded channel and wait for the answer at most `timeout`. One multiplexed connection
//! (or a cluster connection) carries every worker's scripts, pipelined; each request is one
//! `EVALSHA` round trip (`EVAL` once after Redis lost its script cache).
//!
//! Reconnection: a failed call marks the connection down; the next job reconnects (jobs that
//! arrive meanwhile wait for it), and a failed connect is retried on a job at most every
//! [`RETRY`], so while Redis is away requests fail fast and `fail_open` decides. When Redis is
//! back, the next try picks it up: no restart.

use super::algo::{Algorithm, Decision};
use portico_config::Redis;
use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// The script, loaded once per process (its SHA is what `EVALSHA` sends).
fn script() -> &'static redis::Script {
    static SCRIPT: OnceLock<redis::Script> = OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(include_str!("redis.lua")))
}

/// How long after a failed connect the next one may be tried.
const RETRY: Duration = Duration::from_millis(200);
/// Connect timeout, and how long one call may wait on Redis before the connection is
/// declared broken (the request itself waits only its plugin's `timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Jobs waiting for the Redis thread at most; past it, requests count as "Redis unreachable".
const QUEUE: usize = 16 * 1024;

/// One limiter call for the Redis thread.
struct Job {
    key: String,
    limit: u64,
    window_us: u64,
    algorithm: Algorithm,
    reply: oneshot::Sender<Option<Decision>>,
}

/// A handle on the Redis thread of one `gateway.redis` config. Cheap to share; the thread and
/// its connection end when the last handle is dropped.
#[derive(Debug)]
pub struct RedisClient {
    config: Redis,
    tx: OnceLock<Option<mpsc::Sender<Job>>>,
}

impl RedisClient {
    /// The client of `config`: the running one when a live snapshot uses the same config.
    pub fn shared(config: &Redis) -> Arc<RedisClient> {
        let key = format!("redis\u{0}{:?}", config);
        crate::shared_state::shared(key, || RedisClient {
            config: config.clone(),
            tx: OnceLock::new(),
        })
    }

    /// Counts one request for `key` in Redis. `None` when Redis did not answer within `timeout`
    /// (unreachable, failing, or slow): the caller's `fail_open` decides.
    pub async fn check(
        &self,
        key: String,
        limit: u64,
        window_us: u64,
        algorithm: Algorithm,
        timeout: Duration,
    ) -> Option<Decision> {
        let tx = self.tx.get_or_init(|| spawn(&self.config)).as_ref()?;
        let (reply, rx) = oneshot::channel();
        let job = Job {
            key,
            limit,
            window_us,
            algorithm,
            reply,
        };
        tx.try_send(job).ok()?;
        tokio::time::timeout(timeout, rx).await.ok()?.ok()?
    }
}

/// Starts the Redis thread; `None` (every call fails) if the thread cannot start.
fn spawn(config: &Redis) -> Option<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let config = config.clone();
    let started = std::thread::Builder::new().name("portico-redis".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(target: "portico::rate_limit", error = %e, "cannot start the Redis runtime");
                return;
            }
        };
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, serve(config, rx));
    });
    match started {
        Ok(_) => Some(tx),
        Err(e) => {
            tracing::error!(target: "portico::rate_limit", error = %e, "cannot start the Redis thread");
            None
        }
    }
}

// === the Redis thread ===

#[derive(Clone)]
enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

enum Link {
    /// Not connected; a job may try again from this instant.
    Down(Instant),
    /// Connecting; jobs wait here for the outcome.
    Connecting(Vec<Job>),
    /// Connected; `u64` tells this connection from later ones.
    Up(Conn, u64),
}

type Shared = Rc<RefCell<(Link, u64)>>;

async fn serve(config: Redis, mut rx: mpsc::Receiver<Job>) {
    let link: Shared = Rc::new(RefCell::new((Link::Down(Instant::now()), 0)));
    while let Some(job) = rx.recv().await {
        let mut state = link.borrow_mut();
        match &mut state.0 {
            Link::Up(conn, gen_) => {
                let (conn, gen_) = (conn.clone(), *gen_);
                tokio::task::spawn_local(run(conn, gen_, job, link.clone()));
            }
            Link::Connecting(waiting) => waiting.push(job),
            Link::Down(retry_at) if Instant::now() < *retry_at => {
                let _ = job.reply.send(None);
            }
            Link::Down(_) => {
                state.0 = Link::Connecting(vec![job]);
                tokio::task::spawn_local(connect(config.clone(), link.clone()));
            }
        }
    }
}

/// Connects, then runs the jobs that waited (or fails them).
async fn connect(config: Redis, link: Shared) {
    let outcome = open(&config).await;
    let waiting = {
        let mut state = link.borrow_mut();
        let waiting = match std::mem::replace(&mut state.0, Link::Down(Instant::now() + RETRY)) {
            Link::Connecting(w) => w,
            _ => Vec::new(),
        };
        match &outcome {
            Ok(conn) => {
                state.1 += 1;
                state.0 = Link::Up(conn.clone(), state.1);
                tracing::info!(target: "portico::rate_limit", "connected to Redis");
            }
            Err(e) => {
                tracing::warn!(target: "portico::rate_limit", error = %e, "cannot connect to Redis");
            }
        }
        waiting
    };
    for job in waiting {
        match &outcome {
            Ok(conn) => {
                let gen_ = link.borrow().1;
                tokio::task::spawn_local(run(conn.clone(), gen_, job, link.clone()));
            }
            Err(_) => {
                let _ = job.reply.send(None);
            }
        }
    }
}

async fn open(config: &Redis) -> redis::RedisResult<Conn> {
    let urls: Vec<&str> = config.all_urls().map(String::as_str).collect();
    if config.is_cluster() {
        let client = redis::cluster::ClusterClient::builder(urls)
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            .retries(0)
            .build()?;
        return Ok(Conn::Cluster(client.get_async_connection().await?));
    }
    let client = redis::Client::open(urls.first().copied().unwrap_or_default())?;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    Ok(Conn::Single(
        client.get_multiplexed_async_connection_with_config(&cfg).await?,
    ))
}

/// One script call; a connection-level failure marks the link down for the next job.
async fn run(mut conn: Conn, gen_: u64, job: Job, link: Shared) {
    let mut inv = script().prepare_invoke();
    inv.key(&job.key)
        .arg(job.limit)
        .arg(job.window_us)
        .arg(job.algorithm.script_name());
    let result: redis::RedisResult<(u8, u64, u64, u64)> = match &mut conn {
        Conn::Single(c) => inv.invoke_async(c).await,
        Conn::Cluster(c) => inv.invoke_async(c).await,
    };
    match result {
        Ok((allowed, remaining, reset_us, retry_us)) => {
            let _ = job.reply.send(Some(Decision {
                allowed: allowed == 1,
                limit: job.limit,
                remaining,
                reset_us,
                retry_us,
            }));
        }
        Err(e) => {
            let _ = job.reply.send(None);
            let broken = e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error();
            let mut state = link.borrow_mut();
            if broken && matches!(state.0, Link::Up(_, g) if g == gen_) {
                tracing::warn!(target: "portico::rate_limit", error = %e, "Redis connection lost");
                state.0 = Link::Down(Instant::now());
            } else if !broken {
                tracing::warn!(target: "portico::rate_limit", error = %e, "rate-limit script failed");
            }
        }
    }
}
