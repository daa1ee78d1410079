//! A real `redis-server` on a free loopback port, for the rate-limit tests: started with no
//! persistence, waited for until it answers PING, stopped (and its port freed) on drop.
//! [`RedisServer::kill`] and [`RedisServer::restart`] take it away and bring it back on the
//! same port, as an outage would.
//!
//! `redis-server` must be installed (`.ci/run` installs it); a test that needs it fails with
//! a clear message when it is missing, never silently skips.

use crate::support::{DEADLINE, eventually, free_port};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tempfile::TempDir;

pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    dir: TempDir,
    cluster: bool,
}

impl RedisServer {
    /// A plain Redis server.
    pub async fn start() -> RedisServer {
        Self::start_with(false).await
    }

    /// A one-node Redis Cluster owning every slot: the cluster protocol (CLUSTER SLOTS,
    /// MOVED) with a single process.
    pub async fn start_cluster() -> RedisServer {
        let r = Self::start_with(true).await;
        let out = r.cli(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
        assert!(out.contains("OK"), "CLUSTER ADDSLOTSRANGE: {out}");
        eventually("the one-node cluster to be ok", DEADLINE, || {
            r.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok").then_some(())
        })
        .await;
        r
    }

    async fn start_with(cluster: bool) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("portico-redis-")
            .tempdir()
            .expect("tempdir");
        let mut r = RedisServer {
            port: free_port(),
            child: None,
            dir,
            cluster,
        };
        r.spawn().await;
        r
    }

    async fn spawn(&mut self) {
        let port = self.port.to_string();
        let dir = self.dir.path().display().to_string();
        let mut args = vec![
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir,
        ];
        if self.cluster {
            args.extend(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]);
        }
        let child = Command::new("redis-server")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}); install it (.ci/run does: apt-get install redis-server)")
            });
        self.child = Some(child);
        eventually("redis-server to answer PING", DEADLINE, || self.ping().then_some(())).await;
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Whether it answers PING now.
    pub fn ping(&self) -> bool {
        self.command(&["PING"]).is_some_and(|r| r.starts_with("+PONG"))
    }

    /// Runs one command over RESP and returns the raw reply, `None` when unreachable.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).ok()?;
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).ok()?;
        (n > 0).then(|| String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// `redis-cli -p PORT ARGS...`, its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Kills the server (SIGKILL) and waits until its port refuses connections.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let port = self.port;
        eventually("redis-server's port to close", DEADLINE, || {
            TcpStream::connect(("127.0.0.1", port)).is_err().then_some(())
        })
        .await;
    }

    /// Starts the server again on the same port (empty: it persisted nothing).
    pub async fn restart(&mut self) {
        self.spawn().await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
