//! The command line: `version`, `validate` (every error at once, with its location), and
//! `run` refusing to start on a bad config or a taken port.

#![allow(clippy::unwrap_used)]

mod support;

use support::DEADLINE;
use support::gateway::{portico, run_until_exit, validate, validate_env};

const VALID: &str = r#"
gateway:
  listeners: [{ address: "127.0.0.1:18080" }]
upstreams:
  - id: users
    nodes: [{ address: "127.0.0.1:19001", weight: 3 }, { address: "127.0.0.1:19002" }]
routes:
  - { id: users, paths: [/users, "/users/{id}"], upstream: users }
  - id: hello
    paths: [/hello]
    plugins: { mock: { status: 200, body: "hi" } }
"#;

/// The lines of `out` that are exactly `line`, trimmed.
fn has_line(out: &str, line: &str) -> bool {
    out.lines().any(|l| l.trim() == line)
}

/// The first line of `out` that starts with `location` (an error's location), if any.
fn line_at<'a>(out: &'a str, location: &str) -> Option<&'a str> {
    out.lines().map(str::trim).find(|l| l.starts_with(location))
}

fn assert_error_at(out: &str, location: &str, contains: &str) {
    let line = line_at(out, location).unwrap_or_else(|| panic!("no error at {location:?} in:\n{out}"));
    assert!(
        line.to_lowercase().contains(&contains.to_lowercase()),
        "error at {location:?} should mention {contains:?}: {line}\nwhole output:\n{out}"
    );
}

#[test]
fn version_prints_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let out = portico(&["version"], dir.path(), &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains(env!("CARGO_PKG_VERSION")),
        "`portico version` should print {}: {:?}",
        env!("CARGO_PKG_VERSION"),
        out.stdout
    );
}

#[test]
fn validate_prints_ok_for_a_valid_config() {
    let (code, out) = validate(VALID);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), "ok");
}

#[test]
fn validate_reads_portico_yaml_by_default() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("portico.yaml"), VALID).unwrap();
    let out = portico(&["validate"], dir.path(), &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(out.stdout.trim(), "ok");
}

#[test]
fn validate_of_a_missing_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = portico(&["validate", "-c", "nope.yaml"], dir.path(), &[]);
    assert_ne!(out.code, 0, "{}", out.all());
    assert!(
        out.all().contains("nope.yaml"),
        "the message should name the file: {}",
        out.all()
    );
}

#[test]
fn validate_reports_every_semantic_error_with_its_location() {
    let (code, out) = validate(
        r#"
gateway:
  listeners: [{ address: "127.0.0.1:18080" }, { address: "not-an-address" }]
  workers: 0
upstreams:
  - id: users
    nodes: [{ address: "127.0.0.1:19001" }]
  - id: users
    nodes: [{ address: "127.0.0.1" }]
  - id: zero
    nodes: [{ address: "127.0.0.1:19003", weight: 0 }]
  - id: rewrite
    nodes: [{ address: "127.0.0.1:19004" }]
    pass_host: rewrite
routes:
  - { id: a, paths: [/a], upstream: users }
  - { id: b, paths: [/b], upstream: users, methods: [FETCH] }
  - { id: c, paths: [/c], upstream: users2 }
  - { id: c, paths: [/d], upstream: users, hosts: ["bad host"] }
  - { id: e, paths: [/e] }
"#,
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        has_line(&out, r#"routes[2].upstream: unknown upstream "users2""#),
        "the spec's own example line is missing:\n{out}"
    );
    for (location, contains) in [
        ("gateway.listeners[1].address", "invalid"),
        ("gateway.workers", ""),
        ("upstreams[1].id", "duplicate"),
        ("upstreams[1].nodes[0].address", "invalid"),
        ("upstreams[2].nodes", "weight"),
        ("upstreams[3].upstream_host", ""),
        ("routes[1].methods[0]", "FETCH"),
        ("routes[3].id", "duplicate"),
        ("routes[3].hosts[0]", "bad host"),
        ("routes[4].upstream", ""),
    ] {
        assert_error_at(&out, location, contains);
    }
    assert!(!out.lines().any(|l| l.trim() == "ok"), "must not say ok:\n{out}");
}

#[test]
fn validate_reports_every_structural_error_with_its_location() {
    let (code, out) = validate(
        r#"
gateway:
  listeners: [{ address: "127.0.0.1:18080", backlog: 10 }]
upstreams:
  - id: users
    nodes: [{ address: "127.0.0.1:19001", wieght: 2 }]
  - id: slow
    nodes: [{ address: "127.0.0.1:19002" }]
    timeout: { connect: 2 parsecs }
routes:
  - { id: a, pathz: [/a], paths: [/a], upstream: users }
rouets: []
"#,
    );
    assert_eq!(code, 1, "{out}");
    for (location, contains) in [
        ("gateway.listeners[0].backlog", "backlog"),
        ("upstreams[0].nodes[0].wieght", "wieght"),
        ("upstreams[1].timeout.connect", "duration"),
        ("routes[0].pathz", "pathz"),
        ("rouets", ""),
    ] {
        assert_error_at(&out, location, contains);
    }
}

#[test]
fn plugins_not_built_yet_are_refused_out_loud() {
    let (code, out) = validate(
        r#"
gateway:
  listeners: [{ address: "127.0.0.1:18080" }]
upstreams: [{ id: u, nodes: [{ address: "127.0.0.1:19001" }] }]
routes:
  - { id: a, paths: [/a], upstream: u, plugins: { compression: {} } }
  - { id: b, paths: [/b], upstream: u, plugins: { grpc-transcode: {} } }
global_plugins:
  proxy-cache: {}
"#,
    );
    assert_eq!(code, 1, "{out}");
    for location in [
        "routes[0].plugins.compression",
        "routes[1].plugins.grpc-transcode",
        "global_plugins.proxy-cache",
    ] {
        assert_error_at(&out, location, "not supported yet");
    }
}

#[test]
fn config_and_plugin_errors_are_reported_together() {
    let (code, out) = validate(
        r#"
gateway:
  listeners: [{ address: "127.0.0.1:18080" }]
upstreams: [{ id: u, nodes: [{ address: "127.0.0.1:19001" }] }]
routes:
  - { id: a, paths: [/a], upstream: users2 }
  - { id: b, paths: [/b], upstream: u, plugins: { key-auth: { header: "bad header" } } }
"#,
    );
    assert_eq!(code, 1, "{out}");
    assert_error_at(&out, "routes[0].upstream", "users2");
    assert_error_at(&out, "routes[1].plugins.key-auth", "invalid header name");
}

#[test]
fn an_unknown_plugin_is_an_error() {
    let (code, out) = validate(
        r#"
gateway: { listeners: [{ address: "127.0.0.1:18080" }] }
routes:
  - { id: a, paths: [/a], plugins: { mock: {}, no-such-plugin: {} } }
"#,
    );
    assert_eq!(code, 1, "{out}");
    assert_error_at(&out, "routes[0].plugins.no-such-plugin", "");
}

#[test]
fn plugin_config_errors_are_located_inside_the_plugin() {
    let (code, out) = validate(
        r#"
gateway: { listeners: [{ address: "127.0.0.1:18080" }] }
upstreams: [{ id: u, nodes: [{ address: "127.0.0.1:19001" }] }]
routes:
  - { id: a, paths: [/a], plugins: { mock: { stauts: 200 } } }
  - { id: b, paths: [/b], plugins: { redirect: { status: 301, too: "https://x" } } }
  - { id: c, paths: [/c], upstream: u, plugins: { request-transformer: { regex_uri: ["(unclosed", "/x"] } } }
  - { id: d, paths: [/d], upstream: u, plugins: { response-transformer: { status: 99 } } }
"#,
    );
    assert_eq!(code, 1, "{out}");
    for location in [
        "routes[0].plugins.mock",
        "routes[1].plugins.redirect",
        "routes[2].plugins.request-transformer",
        "routes[3].plugins.response-transformer",
    ] {
        assert_error_at(&out, location, "");
    }
}

#[test]
fn environment_variables_are_substituted() {
    let yaml = r#"
gateway: { listeners: [{ address: "${PORTICO_TEST_LISTEN:-127.0.0.1:18080}" }] }
upstreams: [{ id: u, nodes: [{ address: "${PORTICO_TEST_NODE_XYZ}" }] }]
routes: [{ id: a, paths: [/a], upstream: u }]
"#;
    let out = validate_env(yaml, &[]);
    assert_eq!(
        out.code,
        1,
        "an unset variable without a default is an error:\n{}",
        out.all()
    );
    assert!(out.all().contains("PORTICO_TEST_NODE_XYZ"), "{}", out.all());
    assert_error_at(&out.all(), "upstreams[0].nodes[0].address", "PORTICO_TEST_NODE_XYZ");

    let out = validate_env(yaml, &[("PORTICO_TEST_NODE_XYZ", "127.0.0.1:19001")]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(out.stdout.trim(), "ok");

    let out = validate_env(
        yaml,
        &[
            ("PORTICO_TEST_NODE_XYZ", "127.0.0.1:19001"),
            ("PORTICO_TEST_LISTEN", "nope"),
        ],
    );
    assert_eq!(out.code, 1, "the substituted value is validated:\n{}", out.all());
    assert_error_at(&out.all(), "gateway.listeners[0].address", "invalid");
}

#[test]
fn run_refuses_an_invalid_config() {
    let yaml = r#"
gateway: { listeners: [{ address: "127.0.0.1:18080" }] }
routes: [{ id: a, paths: [/a], upstream: users2 }]
"#;
    let out = run_until_exit(yaml, DEADLINE).expect("`portico run` on an invalid config should exit");
    assert_ne!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr.contains("routes[0].upstream") && out.stderr.contains("users2"),
        "stderr should say what is wrong and where:\n{}",
        out.stderr
    );
}

#[test]
fn run_refuses_a_taken_port() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let yaml = format!(
        r#"
gateway: {{ listeners: [{{ address: "{addr}" }}] }}
routes: [{{ id: a, paths: [/a], plugins: {{ mock: {{ body: hi }} }} }}]
"#
    );
    let out = run_until_exit(&yaml, DEADLINE).expect("`portico run` on a taken port should exit");
    assert_ne!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr.contains(&addr.to_string()),
        "stderr should name the address it could not bind:\n{}",
        out.stderr
    );
    drop(taken);
}

#[test]
fn run_reads_portico_yaml_by_default() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("portico.yaml"),
        "gateway: { listeners: [{ address: \"127.0.0.1:18080\" }] }\nroutes: [{ id: a, paths: [/a], upstream: default-file-marker }]\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(support::gateway::BIN)
        .arg("run")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("`portico run` with an invalid portico.yaml did not exit");
        }
        std::thread::sleep(support::POLL);
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains("default-file-marker"), "it read ./portico.yaml: {err}");
}

#[test]
fn balancer_and_health_check_settings_are_checked() {
    let (code, out) = validate(
        r#"
gateway:
  listeners: [{ address: "127.0.0.1:18080" }]
upstreams:
  - id: hashed
    nodes: [{ address: "127.0.0.1:19001" }]
    balancer: consistent_hash
    hash_on: body:x
  - id: checked
    nodes: [{ address: "127.0.0.1:19001" }]
    health_check: { active: { path: healthz, intervall: 2s } }
  - id: passive
    nodes: [{ address: "127.0.0.1:19001" }]
    health_check: { passive: { failures: 0 } }
routes:
  - { id: a, paths: [/a], upstream: hashed }
"#,
    );
    assert_eq!(code, 1, "{out}");
    assert_error_at(&out, "upstreams[0].hash_on", "header:NAME");
    assert_error_at(&out, "upstreams[1].health_check.active.intervall", "unknown field");
    assert_error_at(&out, "upstreams[2].health_check.passive.failures", "at least 1");
}

#[test]
fn the_bundled_example_configs_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut examples: Vec<String> = std::fs::read_dir(root.join("examples"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".yaml"))
        .map(|name| format!("examples/{name}"))
        .collect();
    examples.sort();
    assert!(examples.iter().any(|e| e == "examples/quickstart.yaml"), "{examples:?}");
    for example in &examples {
        let out = portico(&["validate", "-c", example], root, &[]);
        assert_eq!(out.code, 0, "{example}: {}", out.all());
        assert_eq!(out.stdout.trim(), "ok", "{example}");
    }
}
