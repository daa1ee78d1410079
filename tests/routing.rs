//! Route matching through the real binary: priority first, then exact host > wildcard > none,
//! then exact path > `{param}` > prefix, longer prefix first; methods and headers as conditions.
//! Every route answers with a `mock` whose body is its own id.

#![allow(clippy::unwrap_used)]

mod support;

use hyper::Method;
use support::{Client, Gateway};

/// The id of the route that answered `method path` with `host` and `headers`, or `404`.
async fn hit(gw: &Gateway, method: &str, host: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut req = Client::new()
        .request(Method::from_bytes(method.as_bytes()).unwrap(), &gw.url(path))
        .host(host);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.send().await;
    match resp.status {
        200 => resp.text(),
        404 => {
            assert_eq!(resp.assert_error(404), "no route matched");
            "404".into()
        }
        s => panic!("{method} {host}{path}: unexpected status {s}: {}", resp.text()),
    }
}

async fn get(gw: &Gateway, host: &str, path: &str) -> String {
    hit(gw, "GET", host, path, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_exact_beats_wildcard_beats_none() {
    let gw = Gateway::with(
        r#"
routes:
  - { id: none, paths: [/h], plugins: { mock: { body: none } } }
  - { id: wild, hosts: ["*.example.com"], paths: [/h], plugins: { mock: { body: wild } } }
  - { id: exact, hosts: [api.example.com], paths: [/h], plugins: { mock: { body: exact } } }
  - { id: other, hosts: [other.example.org], paths: [/h], plugins: { mock: { body: other } } }
"#,
    )
    .start()
    .await;
    assert_eq!(get(&gw, "api.example.com", "/h").await, "exact");
    assert_eq!(get(&gw, "www.example.com", "/h").await, "wild");
    assert_eq!(get(&gw, "other.example.org", "/h").await, "other");
    assert_eq!(get(&gw, "unrelated.test", "/h").await, "none");
    // A wildcard needs a label in front of the suffix.
    assert_eq!(get(&gw, "example.com", "/h").await, "none");
    // Host names compare case-insensitively, and the port is not part of the name.
    assert_eq!(get(&gw, "API.Example.COM", "/h").await, "exact");
    assert_eq!(get(&gw, "api.example.com:8080", "/h").await, "exact");
    assert_eq!(get(&gw, "www.example.com:8080", "/h").await, "wild");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_restrict_a_route() {
    let gw = Gateway::with(
        r#"
routes:
  - { id: only-api, hosts: [api.example.com, "*.api.test"], paths: [/x], plugins: { mock: { body: only-api } } }
"#,
    )
    .start()
    .await;
    assert_eq!(get(&gw, "api.example.com", "/x").await, "only-api");
    assert_eq!(get(&gw, "v2.api.test", "/x").await, "only-api");
    assert_eq!(get(&gw, "web.example.com", "/x").await, "404");
    assert_eq!(get(&gw, "api.test", "/x").await, "404");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_exact_beats_param_beats_prefix() {
    let gw = Gateway::with(
        r#"
routes:
  - { id: prefix, paths: ["/users/*"], plugins: { mock: { body: prefix } } }
  - { id: param, paths: ["/users/{id}"], plugins: { mock: { body: param } } }
  - { id: exact, paths: [/users/me], plugins: { mock: { body: exact } } }
  - { id: two-params, paths: ["/orgs/{org}/repos/{repo}"], plugins: { mock: { body: two-params } } }
  - { id: many, paths: [/a, /b, "/c/{x}"], plugins: { mock: { body: many } } }
"#,
    )
    .start()
    .await;
    assert_eq!(get(&gw, "h.test", "/users/me").await, "exact");
    assert_eq!(get(&gw, "h.test", "/users/42").await, "param");
    assert_eq!(get(&gw, "h.test", "/users/42/posts").await, "prefix");
    assert_eq!(get(&gw, "h.test", "/users/me/posts").await, "prefix");
    // The query string is not part of the path.
    assert_eq!(get(&gw, "h.test", "/users/me?x=1").await, "exact");
    assert_eq!(get(&gw, "h.test", "/users/42?me=1").await, "param");
    // `{param}` is exactly one segment.
    assert_eq!(get(&gw, "h.test", "/orgs/rust/repos/portico").await, "two-params");
    assert_eq!(get(&gw, "h.test", "/orgs/rust/repos/portico/issues").await, "404");
    assert_eq!(get(&gw, "h.test", "/orgs/rust/repos").await, "404");
    // Every path of a route matches.
    assert_eq!(get(&gw, "h.test", "/a").await, "many");
    assert_eq!(get(&gw, "h.test", "/b").await, "many");
    assert_eq!(get(&gw, "h.test", "/c/1").await, "many");
    // Exact means exact.
    assert_eq!(get(&gw, "h.test", "/ab").await, "404");
    assert_eq!(get(&gw, "h.test", "/a/b").await, "404");
    assert_eq!(get(&gw, "h.test", "/nothing").await, "404");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longer_prefix_wins() {
    let gw = Gateway::with(
        r#"
routes:
  - { id: root, paths: ["/*"], plugins: { mock: { body: root } } }
  - { id: api, paths: ["/api/*"], plugins: { mock: { body: api } } }
  - { id: api-v2, paths: ["/api/v2/*"], plugins: { mock: { body: api-v2 } } }
"#,
    )
    .start()
    .await;
    assert_eq!(get(&gw, "h.test", "/api/v2/users/1").await, "api-v2");
    assert_eq!(get(&gw, "h.test", "/api/v1/users").await, "api");
    assert_eq!(get(&gw, "h.test", "/api/v2x").await, "api");
    assert_eq!(get(&gw, "h.test", "/apiv2").await, "root");
    assert_eq!(get(&gw, "h.test", "/anything/else").await, "root");
    assert_eq!(get(&gw, "h.test", "/").await, "root");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_beats_every_tie_break() {
    let gw = Gateway::with(
        r#"
routes:
  - { id: exact, hosts: [api.example.com], paths: [/p], plugins: { mock: { body: exact } } }
  - { id: catch-all, paths: ["/*"], priority: 5, plugins: { mock: { body: catch-all } } }
  - { id: top-post, paths: ["/*"], methods: [POST], priority: 10, plugins: { mock: { body: top-post } } }
  - { id: negative, paths: [/neg], priority: -1, plugins: { mock: { body: negative } } }
  - { id: negative-prefix, paths: ["/neg/*"], priority: -2, plugins: { mock: { body: negative-prefix } } }
"#,
    )
    .start()
    .await;
    assert_eq!(get(&gw, "api.example.com", "/p").await, "catch-all");
    assert_eq!(hit(&gw, "POST", "api.example.com", "/p", &[]).await, "top-post");
    // The catch-all (priority 5) beats the route with priority -1.
    assert_eq!(get(&gw, "h.test", "/neg").await, "catch-all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_specificity_comes_before_path_specificity() {
    let gw = Gateway::with(
        r#"
routes:
  - { id: any-host-exact-path, paths: [/x], plugins: { mock: { body: any-host-exact-path } } }
  - { id: wild-host-param, hosts: ["*.example.com"], paths: ["/{p}"], plugins: { mock: { body: wild-host-param } } }
  - { id: exact-host-prefix, hosts: [api.example.com], paths: ["/*"], plugins: { mock: { body: exact-host-prefix } } }
"#,
    )
    .start()
    .await;
    assert_eq!(get(&gw, "api.example.com", "/x").await, "exact-host-prefix");
    assert_eq!(get(&gw, "www.example.com", "/x").await, "wild-host-param");
    assert_eq!(get(&gw, "www.example.com", "/x/y").await, "404");
    assert_eq!(get(&gw, "elsewhere.test", "/x").await, "any-host-exact-path");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_are_a_condition_with_fallback() {
    let gw = Gateway::with(
        r#"
routes:
  - { id: read, paths: [/m], methods: [GET, HEAD], priority: 1, plugins: { mock: { body: read } } }
  - { id: write, paths: [/m], methods: [post, PUT], priority: 1, plugins: { mock: { body: write } } }
  - { id: any, paths: [/m], plugins: { mock: { body: any } } }
  - { id: only-delete, paths: [/d], methods: [DELETE], plugins: { mock: { body: only-delete } } }
"#,
    )
    .start()
    .await;
    assert_eq!(hit(&gw, "GET", "h.test", "/m", &[]).await, "read");
    assert_eq!(hit(&gw, "POST", "h.test", "/m", &[]).await, "write");
    assert_eq!(hit(&gw, "PUT", "h.test", "/m", &[]).await, "write");
    assert_eq!(hit(&gw, "PATCH", "h.test", "/m", &[]).await, "any");
    assert_eq!(hit(&gw, "DELETE", "h.test", "/d", &[]).await, "only-delete");
    assert_eq!(hit(&gw, "GET", "h.test", "/d", &[]).await, "404");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_a_condition_with_fallback() {
    let gw = Gateway::with(
        r#"
routes:
  - { id: v2, paths: [/h], headers: { x-api-version: "2" }, priority: 1, plugins: { mock: { body: v2 } } }
  - { id: v3-beta, paths: [/h], headers: { x-api-version: "3", x-beta: "yes" }, priority: 1, plugins: { mock: { body: v3-beta } } }
  - { id: default, paths: [/h], plugins: { mock: { body: default } } }
  - { id: strict, paths: [/s], headers: { x-key: "k" }, plugins: { mock: { body: strict } } }
"#,
    )
    .start()
    .await;
    assert_eq!(hit(&gw, "GET", "h.test", "/h", &[("x-api-version", "2")]).await, "v2");
    // Header names are case-insensitive.
    assert_eq!(hit(&gw, "GET", "h.test", "/h", &[("X-API-Version", "2")]).await, "v2");
    assert_eq!(
        hit(&gw, "GET", "h.test", "/h", &[("x-api-version", "3")]).await,
        "default"
    );
    assert_eq!(
        hit(&gw, "GET", "h.test", "/h", &[("x-api-version", "3"), ("x-beta", "yes")]).await,
        "v3-beta"
    );
    assert_eq!(hit(&gw, "GET", "h.test", "/h", &[]).await, "default");
    assert_eq!(
        hit(&gw, "GET", "h.test", "/h", &[("x-api-version", "22")]).await,
        "default"
    );
    assert_eq!(hit(&gw, "GET", "h.test", "/s", &[("x-key", "k")]).await, "strict");
    assert_eq!(hit(&gw, "GET", "h.test", "/s", &[("x-key", "K")]).await, "404");
    assert_eq!(hit(&gw, "GET", "h.test", "/s", &[]).await, "404");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_routes_still_route_exactly() {
    let mut yaml = String::from("routes:\n");
    for i in 0..2000 {
        yaml.push_str(&format!(
            "  - {{ id: r{i}, paths: [\"/svc{i}/*\", \"/item{i}/{{id}}\"], plugins: {{ mock: {{ body: r{i} }} }} }}\n"
        ));
        yaml.push_str(&format!(
            "  - {{ id: h{i}, hosts: [h{i}.example.com], paths: [/], plugins: {{ mock: {{ body: h{i} }} }} }}\n"
        ));
    }
    let gw = Gateway::with(&yaml).start().await;
    for i in [0, 1, 999, 1500, 1999] {
        assert_eq!(get(&gw, "x.test", &format!("/svc{i}/a/b")).await, format!("r{i}"));
        assert_eq!(get(&gw, "x.test", &format!("/item{i}/7")).await, format!("r{i}"));
        assert_eq!(get(&gw, &format!("h{i}.example.com"), "/").await, format!("h{i}"));
    }
    assert_eq!(get(&gw, "x.test", "/svc2000/a").await, "404");
    assert_eq!(get(&gw, "h2000.example.com", "/").await, "404");
}
