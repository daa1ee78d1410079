//! The real `portico` binary, started on a config written to a temporary directory.
//!
//! A config is YAML text with `{{name}}` placeholders: `{{listen}}`, `{{listen1}}`, ... become
//! free loopback addresses (kept across [`Gateway::rewrite_config`]), `{{dir}}` the temporary
//! directory, `{{access_log}}` a file in it, `{{admin}}` a free loopback address for the admin
//! API ([`Gateway::admin_url`]), and any other name a value given with
//! [`GatewayBuilder::var`] (typically an upstream's address).

use crate::support::{DEADLINE, eventually, ports::free_port};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_portico");

/// The gateway section most tests want: one listener, one worker (deterministic balancing),
/// the access log in a file of the test's own.
pub const PREAMBLE: &str = r#"
gateway:
  listeners:
    - address: "{{listen}}"
  workers: 1
  access_log: { path: "{{access_log}}" }
"#;

/// A running `portico run`. SIGTERM then SIGKILL on drop.
pub struct Gateway {
    child: Child,
    exit: Option<ExitStatus>,
    dir: TempDir,
    config: PathBuf,
    vars: BTreeMap<String, String>,
    listeners: Vec<SocketAddr>,
    /// `{{admin}}`, when the config uses it: waited for like a listener.
    admin: Option<SocketAddr>,
    access_log: PathBuf,
}

/// A gateway before it starts.
pub struct GatewayBuilder {
    yaml: String,
    vars: BTreeMap<String, String>,
    env: Vec<(String, String)>,
}

// === impl Gateway ===

impl Gateway {
    /// A gateway on a whole config file's text.
    pub fn builder(yaml: &str) -> GatewayBuilder {
        GatewayBuilder {
            yaml: yaml.to_owned(),
            vars: BTreeMap::new(),
            env: Vec::new(),
        }
    }

    /// A gateway on [`PREAMBLE`] followed by `rest` (upstreams, routes, ...).
    pub fn with(rest: &str) -> GatewayBuilder {
        Self::builder(&format!("{PREAMBLE}{rest}"))
    }

    /// A running gateway with one catch-all route `r` proxying to `up`.
    pub async fn proxying_to(up: &crate::support::Upstream) -> Gateway {
        Self::with(
            r#"
routes: [{ id: r, paths: ["/*"], upstream: { nodes: [{ address: "{{a}}" }] } }]
"#,
        )
        .var("a", &up.address())
        .start()
        .await
    }

    /// The first listener.
    pub fn addr(&self) -> SocketAddr {
        self.listeners[0]
    }

    /// Every listener, in placeholder order (`listen`, `listen1`, ...).
    pub fn listeners(&self) -> &[SocketAddr] {
        &self.listeners
    }

    /// `http://127.0.0.1:PORT{path}` on the first listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// `http://ADMIN{path}` on the `{{admin}}` address.
    pub fn admin_url(&self, path: &str) -> String {
        format!(
            "http://{}{path}",
            self.admin.expect("the config has no {{admin}} address")
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Replaces the config file (atomically, by rename) with `yaml`, placeholders filled as at start.
    pub fn rewrite_config(&mut self, yaml: &str) {
        let text = render(yaml, &mut self.vars);
        let tmp = self.dir.path().join("portico.yaml.new");
        std::fs::write(&tmp, text).expect("write config");
        std::fs::rename(&tmp, &self.config).expect("replace config");
    }

    /// Replaces the config file with `text` as it is (no placeholders filled): for broken files.
    pub fn rewrite_config_raw(&mut self, text: &str) {
        let tmp = self.dir.path().join("portico.yaml.new");
        std::fs::write(&tmp, text).expect("write config");
        std::fs::rename(&tmp, &self.config).expect("replace config");
    }

    /// [`Gateway::rewrite_config`] with [`PREAMBLE`] in front.
    pub fn rewrite_with(&mut self, rest: &str) {
        self.rewrite_config(&format!("{PREAMBLE}{rest}"));
    }

    /// Replaces the config file's text but gives it back its old modification time, so that
    /// only a SIGHUP (or a watcher that reads contents) would notice.
    pub fn rewrite_config_same_mtime(&mut self, yaml: &str) {
        let before = std::fs::metadata(&self.config)
            .and_then(|m| m.modified())
            .expect("config mtime");
        let text = render(yaml, &mut self.vars);
        let tmp = self.dir.path().join("portico.yaml.new");
        std::fs::write(&tmp, text).expect("write config");
        File::options()
            .write(true)
            .open(&tmp)
            .and_then(|f| f.set_modified(before))
            .expect("set mtime");
        std::fs::rename(&tmp, &self.config).expect("replace config");
    }

    /// Sends a signal by name (`HUP`, `TERM`, `INT`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    pub fn sighup(&self) {
        self.signal("HUP");
    }

    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.try_exit().is_none()
    }

    fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().expect("try_wait");
        }
        self.exit
    }

    /// Waits for the process to exit; `None` if it is still running after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_exit() {
                return Some(status);
            }
            if start.elapsed() > timeout {
                return None;
            }
            tokio::time::sleep(crate::support::POLL).await;
        }
    }

    /// Everything the gateway wrote to stderr so far (its logs).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Everything the gateway wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default()
    }

    /// Waits until stderr contains `needle`.
    pub async fn wait_stderr(&self, needle: &str) {
        eventually(&format!("{needle:?} in the gateway's stderr"), DEADLINE, || {
            self.stderr().contains(needle).then_some(())
        })
        .await;
    }

    /// Every access log line written so far, parsed (lines that are not JSON objects are skipped).
    /// Reads the `{{access_log}}` file when the config names it, else stdout.
    pub fn access_log_lines(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.access_log).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(Value::is_object)
            .collect()
    }

    /// Waits for the access log line of the request with this `X-Request-Id`.
    pub async fn access_log_for(&self, request_id: &str) -> Value {
        eventually(
            &format!("the access log line of request {request_id}"),
            DEADLINE,
            || {
                self.access_log_lines()
                    .into_iter()
                    .find(|l| l["request_id"].as_str() == Some(request_id))
            },
        )
        .await
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let start = Instant::now();
            while self.child.try_wait().ok().flatten().is_none() && start.elapsed() < Duration::from_secs(3) {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            let err = self.stderr();
            let tail = &err[err.len().saturating_sub(6000)..];
            eprintln!("---- portico stderr (last 6000 bytes) ----\n{tail}\n---- end of portico stderr ----");
        }
    }
}

// === impl GatewayBuilder ===

impl GatewayBuilder {
    /// Fills `{{name}}` with `value`.
    pub fn var(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Sets an environment variable of the gateway process.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Starts the gateway and waits until every listener accepts TCP connections.
    /// Fails the test (with the gateway's stderr) when it exits or does not listen in time.
    pub async fn start(self) -> Gateway {
        let mut last_err = String::new();
        // A port found free may be taken by a parallel test before the gateway binds it:
        // then start again on other ports.
        for _attempt in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("portico-test-")
                .tempdir()
                .expect("tempdir");
            let mut vars = self.vars.clone();
            vars.insert("dir".into(), dir.path().display().to_string());
            let access_log = dir.path().join("access.log");
            vars.insert("access_log".into(), access_log.display().to_string());
            let text = render(&self.yaml, &mut vars);
            let config = dir.path().join("portico.yaml");
            std::fs::write(&config, &text).expect("write config");

            let mut listen: Vec<(&String, &String)> = vars
                .iter()
                .filter(|(k, _)| k.starts_with("listen") && self.yaml.contains(&format!("{{{{{k}}}}}")))
                .collect();
            listen.sort_by_key(|(k, _)| (k.len(), (*k).clone()));
            let listeners: Vec<SocketAddr> = listen.iter().map(|(_, v)| v.parse().expect("listen addr")).collect();
            let admin = self
                .yaml
                .contains("{{admin}}")
                .then(|| vars["admin"].parse().expect("admin addr"));

            let access_log = if self.yaml.contains("{{access_log}}") {
                access_log
            } else {
                dir.path().join("stdout.log")
            };
            let child = Command::new(BIN)
                .args(["run", "-c"])
                .arg(&config)
                .current_dir(dir.path())
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(File::create(dir.path().join("stdout.log")).expect("stdout file"))
                .stderr(File::create(dir.path().join("stderr.log")).expect("stderr file"))
                .spawn()
                .expect("spawn portico");
            let mut gw = Gateway {
                child,
                exit: None,
                dir,
                config,
                vars,
                listeners,
                admin,
                access_log,
            };
            match gw.wait_listening().await {
                Ok(()) => return gw,
                Err(e) if e.contains("in use") => last_err = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("portico could not bind its listeners three times: {last_err}");
    }
}

// === impl Gateway (start-up) ===

impl Gateway {
    async fn wait_listening(&mut self) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_exit() {
                return Err(format!(
                    "portico exited ({status}) before listening; stderr:\n{}",
                    self.stderr()
                ));
            }
            // "serving" is logged once every listener is bound: a port that accepts before
            // that may belong to another test's server, which a parallel test was handed the
            // same free port for.
            if self.stderr().contains("serving") {
                let mut all = true;
                for addr in self.listeners.iter().chain(&self.admin) {
                    if tokio::net::TcpStream::connect(addr).await.is_err() {
                        all = false;
                        break;
                    }
                }
                if all {
                    return Ok(());
                }
            }
            if start.elapsed() > DEADLINE {
                let _ = self.child.kill();
                return Err(format!(
                    "portico did not listen on {:?} within {DEADLINE:?}; stderr:\n{}",
                    self.listeners,
                    self.stderr()
                ));
            }
            tokio::time::sleep(crate::support::POLL).await;
        }
    }
}

/// Fills `{{name}}` placeholders; `{{listen...}}` names not yet known get a free address.
fn render(yaml: &str, vars: &mut BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(yaml.len());
    let mut rest = yaml;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .unwrap_or_else(|| panic!("unclosed {{{{ in config: {rest}"));
        let name = after[..close].trim();
        if (name.starts_with("listen") || name == "admin") && !vars.contains_key(name) {
            vars.insert(name.to_owned(), format!("127.0.0.1:{}", free_port()));
        }
        let value = vars
            .get(name)
            .unwrap_or_else(|| panic!("no value for placeholder {{{{{name}}}}}"));
        out.push_str(value);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// What a finished `portico` command printed.
#[derive(Debug)]
pub struct Output {
    /// The exit code (`-1` when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// stdout then stderr.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `portico ARGS` in `dir` to completion.
pub fn portico(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run portico");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `portico validate -c FILE` on `yaml` (placeholders filled): the exit code and stdout+stderr.
pub fn validate(yaml: &str) -> (i32, String) {
    let out = validate_env(yaml, &[]);
    (out.code, out.all())
}

/// `portico validate -c FILE` with extra environment variables.
pub fn validate_env(yaml: &str, env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut vars = BTreeMap::new();
    vars.insert("dir".to_owned(), dir.path().display().to_string());
    let path = dir.path().join("portico.yaml");
    std::fs::write(&path, render(yaml, &mut vars)).expect("write config");
    portico(&["validate", "-c", &path.display().to_string()], dir.path(), env)
}

/// `portico run -c FILE` on `yaml`, expected to exit by itself: its output, or `None` if it
/// was still running after `timeout` (then it is killed).
pub fn run_until_exit(yaml: &str, timeout: Duration) -> Option<Output> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut vars = BTreeMap::new();
    vars.insert("dir".to_owned(), dir.path().display().to_string());
    let path = dir.path().join("portico.yaml");
    std::fs::write(&path, render(yaml, &mut vars)).expect("write config");
    let mut child = Command::new(BIN)
        .args(["run", "-c"])
        .arg(&path)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(File::create(dir.path().join("stdout.log")).expect("stdout file"))
        .stderr(File::create(dir.path().join("stderr.log")).expect("stderr file"))
        .spawn()
        .expect("spawn portico");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(crate::support::POLL);
    };
    Some(Output {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(dir.path().join("stdout.log")).unwrap_or_default(),
        stderr: std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default(),
    })
}
