//! A real single-member `etcd` on free loopback ports with its own data directory, for the
//! cluster tests: waited for until `/health` says so, stopped on drop. [`EtcdServer::kill`]
//! and [`EtcdServer::restart`] take it away and bring it back on the same ports with the same
//! data, as an outage would.
//!
//! `etcd` must be installed (`.ci/run` installs Debian's `etcd-server`); a test that needs it
//! fails with a clear message when it is missing, never silently skips.

use crate::support::{DEADLINE, eventually, free_port};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tempfile::TempDir;

pub struct EtcdServer {
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
    dir: TempDir,
}

impl EtcdServer {
    pub async fn start() -> EtcdServer {
        let dir = tempfile::Builder::new()
            .prefix("portico-etcd-")
            .tempdir()
            .expect("tempdir");
        let mut e = EtcdServer {
            client_port: free_port(),
            peer_port: free_port(),
            child: None,
            dir,
        };
        e.spawn().await;
        e
    }

    async fn spawn(&mut self) {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let data = self.dir.path().join("data");
        let log = std::fs::File::create(self.dir.path().join("etcd.log")).expect("etcd log");
        let child = Command::new("etcd")
            .args(["--name", "portico-test", "--data-dir"])
            .arg(&data)
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("portico-test={peer}")])
            .args(["--logger", "zap", "--log-level", "warn"])
            // Room for the large pushes of the 10,000-route scenarios.
            .args(["--max-txn-ops", "100000", "--max-request-bytes", "33554432"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start etcd ({e}); install it (.ci/run does: apt-get install etcd-server)")
            });
        self.child = Some(child);
        eventually("etcd to report healthy", DEADLINE, || self.healthy().then_some(())).await;
    }

    /// `http://127.0.0.1:PORT`, what `config_store.endpoints` lists.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Whether `GET /health` answers `"health":"true"` now.
    pub fn healthy(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.client_port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let req = "GET /health HTTP/1.1\r\nHost: etcd\r\nConnection: close\r\n\r\n";
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.contains(r#""health":"true""#)
    }

    /// A client of this server, for writing and reading documents directly.
    pub async fn client(&self) -> etcd_client::Client {
        etcd_client::Client::connect([self.endpoint()], None)
            .await
            .expect("etcd client")
    }

    /// Writes `value` at `key` as it is (no validation: tests put broken documents too).
    pub async fn put(&self, key: &str, value: &str) -> i64 {
        let resp = self.client().await.put(key, value, None).await.expect("etcd put");
        resp.header().expect("header").revision()
    }

    /// The document at `key`, if any.
    pub async fn get(&self, key: &str) -> Option<String> {
        let resp = self.client().await.get(key, None).await.expect("etcd get");
        resp.kvs()
            .first()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
    }

    /// Kills the server (SIGKILL) and waits until its port refuses connections.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let port = self.client_port;
        eventually("etcd's port to close", DEADLINE, || {
            TcpStream::connect(("127.0.0.1", port)).is_err().then_some(())
        })
        .await;
    }

    /// Starts the server again on the same ports with the data it had.
    pub async fn restart(&mut self) {
        self.spawn().await;
    }

    /// What etcd logged (warnings and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
