use super::*;
use crate::snapshot::compile;
use http::{Method, StatusCode};
use std::time::{Duration, Instant};

fn snapshot(yaml: &str) -> Snapshot {
    let config: portico_config::Config = serde_yaml::from_str(yaml).unwrap();
    compile(&config, "cafe").unwrap()
}

/// The value of the one series of `name` whose labels include all of `labels`.
fn value(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    page.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, v) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        let all = labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        (n == name && all).then(|| v.parse().unwrap())
    })
}

const TWO_ROUTES: &str = r#"
upstreams: [{ id: users, nodes: [{ address: "127.0.0.1:9" }, { address: "127.0.0.1:10" }] }]
routes:
  - { id: m-one, paths: ["/one"], upstream: users }
  - { id: m-two, paths: ["/two"], upstream: { nodes: [{ address: "127.0.0.1:11" }] } }
"#;

fn route<'a>(s: &'a Snapshot, path: &str) -> &'a crate::RouteEntry {
    s.router.find(None, &Method::GET, path, &Default::default()).unwrap()
}

#[test]
fn requests_are_counted_by_route_method_and_status() {
    let s = snapshot(TWO_ROUTES);
    let one = &route(&s, "/one").metrics;
    for (method, status) in [
        (Method::GET, 200),
        (Method::GET, 200),
        (Method::POST, 404),
        (Method::from_bytes(b"BREW").unwrap(), 418),
    ] {
        let mut sample = Sample::new(one.clone(), method_class(&method), Instant::now(), None);
        sample.status = StatusCode::from_u16(status).unwrap();
        sample.finish(10);
    }
    let page = render_snapshot(&s);
    let req = "portico_http_requests_total";
    assert_eq!(
        value(&page, req, &[("route", "m-one"), ("method", "GET"), ("status", "200")]),
        Some(2.0)
    );
    assert_eq!(
        value(&page, req, &[("route", "m-one"), ("method", "POST"), ("status", "404")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &page,
            req,
            &[("route", "m-one"), ("method", "OTHER"), ("status", "418")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&page, "portico_bytes_sent_total", &[("route", "m-one")]),
        Some(40.0)
    );
    let count = "portico_http_request_duration_seconds_count";
    assert_eq!(value(&page, count, &[("route", "m-one")]), Some(4.0));
    let inf = "portico_http_request_duration_seconds_bucket";
    assert_eq!(value(&page, inf, &[("route", "m-one"), ("le", "+Inf")]), Some(4.0));
    assert!(page.contains("portico_config_info{hash=\"cafe\"} 1"), "{page}");
}

#[test]
fn counters_survive_a_recompile_and_gone_routes_leave_the_page() {
    let s = snapshot(TWO_ROUTES);
    route(&s, "/two").metrics.upstream_took(Duration::from_millis(3));
    let again = snapshot(TWO_ROUTES);
    route(&again, "/two").metrics.upstream_took(Duration::from_millis(3));
    let page = render_snapshot(&again);
    let count = "portico_upstream_duration_seconds_count";
    assert_eq!(value(&page, count, &[("route", "m-two")]), Some(2.0));
    let bucket = "portico_upstream_duration_seconds_bucket";
    assert_eq!(value(&page, bucket, &[("route", "m-two"), ("le", "0.0025")]), Some(0.0));
    assert_eq!(value(&page, bucket, &[("route", "m-two"), ("le", "0.005")]), Some(2.0));

    let other = snapshot(r#"routes: [{ id: m-three, paths: ["/"], plugins: { mock: {} } }]"#);
    let page = render_snapshot(&other);
    assert!(!page.contains("m-two"), "{page}");
    assert!(page.contains("portico_config_info{hash=\"cafe\"} 1"));
}

#[test]
fn refusals_are_counted_by_plugin() {
    let s = snapshot(TWO_ROUTES);
    let one = &route(&s, "/one").metrics;
    one.answered_by("rate-limit", StatusCode::TOO_MANY_REQUESTS);
    one.answered_by("key-auth", StatusCode::UNAUTHORIZED);
    one.answered_by("key-auth", StatusCode::UNAUTHORIZED);
    one.answered_by("mock", StatusCode::UNAUTHORIZED);
    one.answered_by("redirect", StatusCode::MOVED_PERMANENTLY);
    let page = render_snapshot(&s);
    assert_eq!(
        value(&page, "portico_rate_limit_rejections_total", &[("route", "m-one")]),
        Some(1.0)
    );
    let auth = "portico_auth_failures_total";
    assert_eq!(
        value(&page, auth, &[("route", "m-one"), ("plugin", "key-auth")]),
        Some(2.0)
    );
    assert_eq!(value(&page, auth, &[("route", "m-one"), ("plugin", "mock")]), None);
}

#[test]
fn nodes_report_health_and_in_flight() {
    let s = snapshot(TWO_ROUTES);
    let up = route(&s, "/one").upstream.clone().unwrap();
    let _busy = portico_upstream::InFlight::new(&up.nodes[1].state);
    let page = render_snapshot(&s);
    let healthy = "portico_upstream_node_healthy";
    assert_eq!(
        value(&page, healthy, &[("upstream", "users"), ("node", "127.0.0.1:9")]),
        Some(1.0)
    );
    assert_eq!(
        value(&page, healthy, &[("upstream", "m-two"), ("node", "127.0.0.1:11")]),
        Some(1.0)
    );
    let inflight = "portico_upstream_node_inflight";
    assert_eq!(
        value(&page, inflight, &[("upstream", "users"), ("node", "127.0.0.1:10")]),
        Some(1.0)
    );
}

#[test]
fn method_classes_are_closed() {
    assert_eq!(METHODS[usize::from(method_class(&Method::PATCH))], "PATCH");
    assert_eq!(
        METHODS[usize::from(method_class(&Method::from_bytes(b"PROPFIND").unwrap()))],
        "OTHER"
    );
}
