//! Router tests: matching, every precedence rule, fallback, errors, and a large table.

use super::*;

/// A route definition built in one expression.
fn route(paths: &[&str]) -> RouteDef {
    RouteDef {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        ..RouteDef::default()
    }
}

impl RouteDef {
    fn hosts(mut self, hosts: &[&str]) -> Self {
        self.hosts = hosts.iter().map(|h| (*h).to_owned()).collect();
        self
    }

    fn methods(mut self, methods: &[Method]) -> Self {
        self.methods = methods.to_vec();
        self
    }

    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers
            .push((HeaderName::from_static(name), HeaderValue::from_static(value)));
        self
    }

    fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
}

/// A router whose values are the routes' indices.
fn router(defs: Vec<RouteDef>) -> Router<usize> {
    Router::new(defs.into_iter().enumerate().map(|(i, d)| (d, i)).collect()).expect("valid routes")
}

fn get(r: &Router<usize>, host: Option<&str>, path: &str) -> Option<usize> {
    r.find(host, &Method::GET, path, &HeaderMap::new()).copied()
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    map
}

// === matching ===

#[test]
fn empty_router_finds_nothing() {
    let r = router(vec![]);
    assert!(r.is_empty());
    assert_eq!(r.len(), 0);
    assert_eq!(get(&r, Some("a.com"), "/"), None);
    assert_eq!(get(&r, None, "/"), None);
    let d: Router<()> = Router::default();
    assert!(d.is_empty());
}

#[test]
fn exact_paths() {
    let r = router(vec![route(&["/users"]), route(&["/"]), route(&["/users/"])]);
    assert_eq!(r.len(), 3);
    assert!(!r.is_empty());
    assert_eq!(get(&r, None, "/users"), Some(0));
    assert_eq!(get(&r, None, "/"), Some(1));
    assert_eq!(get(&r, None, "/users/"), Some(2));
    assert_eq!(get(&r, None, "/Users"), None, "paths are case-sensitive");
    assert_eq!(get(&r, None, "/users/x"), None);
    assert_eq!(get(&r, None, "/user"), None);
    assert_eq!(get(&r, None, "/usersx"), None);
}

#[test]
fn params_match_one_non_empty_segment() {
    let r = router(vec![route(&["/users/{id}"]), route(&["/orgs/{org}/repos/{repo}"])]);
    assert_eq!(get(&r, None, "/users/5"), Some(0));
    assert_eq!(get(&r, None, "/users/{id}"), Some(0));
    assert_eq!(get(&r, None, "/users"), None);
    assert_eq!(get(&r, None, "/users/"), None);
    assert_eq!(get(&r, None, "/users/5/"), None);
    assert_eq!(get(&r, None, "/users/5/x"), None);
    assert_eq!(get(&r, None, "/orgs/a/repos/b"), Some(1));
    assert_eq!(get(&r, None, "/orgs/a/repos"), None);
    assert_eq!(get(&r, None, "/orgs//repos/b"), None);
}

#[test]
fn params_backtrack_into_other_branches() {
    let r = router(vec![route(&["/a/{x}/c"]), route(&["/{y}/b/d"]), route(&["/a/b/{z}/e"])]);
    assert_eq!(get(&r, None, "/a/b/c"), Some(0));
    assert_eq!(get(&r, None, "/a/b/d"), Some(1));
    assert_eq!(get(&r, None, "/a/b/x/e"), Some(2));
    assert_eq!(get(&r, None, "/a/b/e"), None);
}

#[test]
fn prefix_edges() {
    let r = router(vec![route(&["/static/*"])]);
    for hit in ["/static", "/static/", "/static/a", "/static/a/b", "/static//x"] {
        assert_eq!(get(&r, None, hit), Some(0), "{hit}");
    }
    for miss in ["/staticx", "/stati", "/", "/x/static", "/Static"] {
        assert_eq!(get(&r, None, miss), None, "{miss}");
    }
}

#[test]
fn root_prefix_matches_everything() {
    let r = router(vec![route(&["/*"])]);
    for path in ["/", "/a", "/a/b/c", "/a/", "*", ""] {
        assert_eq!(get(&r, None, path), Some(0), "{path:?}");
    }
}

#[test]
fn params_before_a_prefix() {
    let r = router(vec![route(&["/{tenant}/files/*"])]);
    assert_eq!(get(&r, None, "/acme/files"), Some(0));
    assert_eq!(get(&r, None, "/acme/files/a/b"), Some(0));
    assert_eq!(get(&r, None, "/acme/filesx"), None);
    assert_eq!(get(&r, None, "//files/a"), None);
    assert_eq!(get(&r, None, "/acme"), None);
}

#[test]
fn several_hosts_and_paths_per_route() {
    let r = router(vec![
        route(&["/users", "/users/{id}", "/static/*"]).hosts(&["api.example.com", "*.example.org"]),
        route(&["/*"]),
    ]);
    for host in ["api.example.com", "x.example.org"] {
        for path in ["/users", "/users/1", "/static/x"] {
            assert_eq!(get(&r, Some(host), path), Some(0), "{host}{path}");
        }
        assert_eq!(get(&r, Some(host), "/other"), Some(1));
    }
    assert_eq!(get(&r, Some("example.org"), "/users"), Some(1));
    assert_eq!(get(&r, None, "/users"), Some(1));
}

// === hosts ===

#[test]
fn wildcard_hosts() {
    let r = router(vec![route(&["/"]).hosts(&["*.example.com"])]);
    assert_eq!(get(&r, Some("a.example.com"), "/"), Some(0));
    assert_eq!(get(&r, Some("a.b.example.com"), "/"), Some(0));
    assert_eq!(get(&r, Some("example.com"), "/"), None);
    assert_eq!(get(&r, Some("aexample.com"), "/"), None);
    assert_eq!(get(&r, Some(".example.com"), "/"), None);
    assert_eq!(get(&r, Some("a.example.com.evil"), "/"), None);
    assert_eq!(get(&r, Some("com"), "/"), None);
    assert_eq!(get(&r, None, "/"), None);
}

#[test]
fn exact_hosts_and_routes_without_hosts() {
    let r = router(vec![route(&["/a"]).hosts(&["api.example.com"]), route(&["/b"])]);
    assert_eq!(get(&r, Some("api.example.com"), "/a"), Some(0));
    assert_eq!(get(&r, Some("x.api.example.com"), "/a"), None);
    assert_eq!(get(&r, Some("example.com"), "/a"), None);
    assert_eq!(
        get(&r, None, "/a"),
        None,
        "a request without a host matches no host route"
    );
    assert_eq!(get(&r, Some("api.example.com"), "/b"), Some(1));
    assert_eq!(get(&r, Some("anything"), "/b"), Some(1));
    assert_eq!(get(&r, None, "/b"), Some(1));
}

#[test]
fn hosts_are_case_insensitive() {
    let long = format!("{}.Example.com", "A".repeat(300));
    let r = router(vec![
        route(&["/"]).hosts(&["Api.Example.COM"]),
        route(&["/w"]).hosts(&["*.EXAMPLE.com"]),
        route(&["/long"]).hosts(&[long.as_str()]),
    ]);
    for host in [
        "api.example.com",
        "API.EXAMPLE.COM",
        "aPi.ExAmPlE.cOm",
        "api.example.com.",
    ] {
        assert_eq!(get(&r, Some(host), "/"), Some(0), "{host}");
    }
    assert_eq!(get(&r, Some("X.Example.Com"), "/w"), Some(1));
    // Longer than the lookup's stack buffer: lowered on the heap instead.
    assert_eq!(get(&r, Some(&long.to_uppercase()), "/long"), Some(2));
    assert_eq!(get(&r, Some(&long.to_lowercase()), "/w"), Some(1));
}

// === precedence ===

#[test]
fn priority_beats_specificity() {
    let r = router(vec![
        route(&["/users/1"]).hosts(&["api.example.com"]),
        route(&["/*"]).priority(1),
        route(&["/users/{id}"]).priority(-1).hosts(&["api.example.com"]),
    ]);
    assert_eq!(get(&r, Some("api.example.com"), "/users/1"), Some(1));
    let r = router(vec![
        route(&["/users/1"]).priority(-5),
        route(&["/users/{id}"]).priority(-1),
    ]);
    assert_eq!(get(&r, None, "/users/1"), Some(1), "negative priorities order too");
}

#[test]
fn exact_host_beats_wildcard_beats_none() {
    let r = router(vec![
        route(&["/a"]),
        route(&["/a"]).hosts(&["*.example.com"]),
        route(&["/a"]).hosts(&["api.example.com"]),
    ]);
    assert_eq!(get(&r, Some("api.example.com"), "/a"), Some(2));
    assert_eq!(get(&r, Some("web.example.com"), "/a"), Some(1));
    assert_eq!(get(&r, Some("example.net"), "/a"), Some(0));
}

#[test]
fn host_kind_beats_path_kind() {
    let r = router(vec![
        route(&["/users/1"]),
        route(&["/users/{id}"]).hosts(&["*.example.com"]),
        route(&["/*"]).hosts(&["api.example.com"]),
    ]);
    assert_eq!(get(&r, Some("api.example.com"), "/users/1"), Some(2));
    assert_eq!(get(&r, Some("web.example.com"), "/users/1"), Some(1));
    assert_eq!(get(&r, Some("other"), "/users/1"), Some(0));
}

#[test]
fn exact_path_beats_param_beats_prefix() {
    let r = router(vec![
        route(&["/users/*"]),
        route(&["/users/{id}"]),
        route(&["/users/me"]),
    ]);
    assert_eq!(get(&r, None, "/users/me"), Some(2));
    assert_eq!(get(&r, None, "/users/5"), Some(1));
    assert_eq!(get(&r, None, "/users/5/x"), Some(0));
    assert_eq!(get(&r, None, "/users"), Some(0));
    // The same with the order reversed: the rule does not depend on definition order.
    let r = router(vec![
        route(&["/users/me"]),
        route(&["/users/{id}"]),
        route(&["/users/*"]),
    ]);
    assert_eq!(get(&r, None, "/users/me"), Some(0));
    assert_eq!(get(&r, None, "/users/5"), Some(1));
    assert_eq!(get(&r, None, "/users/5/x"), Some(2));
}

#[test]
fn longer_prefix_wins() {
    let r = router(vec![
        route(&["/*"]),
        route(&["/a/*"]),
        route(&["/a/b/*"]),
        route(&["/{x}/b/c/*"]),
    ]);
    assert_eq!(get(&r, None, "/z"), Some(0));
    assert_eq!(get(&r, None, "/a"), Some(1));
    assert_eq!(get(&r, None, "/a/x"), Some(1));
    assert_eq!(get(&r, None, "/a/b"), Some(2));
    assert_eq!(get(&r, None, "/a/b/x"), Some(2));
    assert_eq!(get(&r, None, "/a/b/c/d"), Some(3), "more segments win, params included");
}

#[test]
fn equal_prefix_segments_compare_bytes() {
    let r = router(vec![route(&["/{x}/*"]), route(&["/ab/*"]), route(&["/{y}/{z}/*"])]);
    assert_eq!(get(&r, None, "/ab"), Some(1));
    assert_eq!(get(&r, None, "/zz"), Some(0));
    assert_eq!(get(&r, None, "/ab/c"), Some(2), "segments count before bytes");
    let r = router(vec![route(&["/{x}/c/*"]), route(&["/ab/{y}/*"])]);
    assert_eq!(
        get(&r, None, "/ab/c/d"),
        Some(1),
        "two segments each; 2 static bytes beat 1"
    );
}

#[test]
fn longer_wildcard_suffix_wins() {
    let r = router(vec![
        route(&["/"]).hosts(&["*.com"]),
        route(&["/"]).hosts(&["*.example.com"]),
        route(&["/"]).hosts(&["*.b.example.com"]),
    ]);
    assert_eq!(get(&r, Some("a.b.example.com"), "/"), Some(2));
    assert_eq!(get(&r, Some("b.example.com"), "/"), Some(1));
    assert_eq!(get(&r, Some("x.example.com"), "/"), Some(1));
    assert_eq!(get(&r, Some("x.com"), "/"), Some(0));
}

#[test]
fn path_rules_come_before_suffix_length() {
    let r = router(vec![
        route(&["/a/*"]).hosts(&["*.b.example.com"]),
        route(&["/a/x"]).hosts(&["*.example.com"]),
        route(&["/*"]).hosts(&["*.b.example.com"]),
        route(&["/a/x/*"]).hosts(&["*.example.com"]),
    ]);
    assert_eq!(
        get(&r, Some("a.b.example.com"), "/a/x"),
        Some(1),
        "exact path beats longer suffix"
    );
    assert_eq!(
        get(&r, Some("a.b.example.com"), "/a/x/y"),
        Some(3),
        "longer prefix beats longer suffix"
    );
    assert_eq!(get(&r, Some("a.b.example.com"), "/a/y"), Some(0));
    assert_eq!(get(&r, Some("a.b.example.com"), "/q"), Some(2));
}

#[test]
fn earlier_route_wins_a_full_tie() {
    let r = router(vec![
        route(&["/a"]),
        route(&["/a"]),
        route(&["/{x}"]).hosts(&["h"]),
        route(&["/{y}"]).hosts(&["h"]),
    ]);
    assert_eq!(get(&r, None, "/a"), Some(0));
    assert_eq!(get(&r, Some("h"), "/b"), Some(2));
    let r = router(vec![route(&["/{y}"]).hosts(&["h"]), route(&["/a"]).priority(0)]);
    assert_eq!(get(&r, Some("h"), "/a"), Some(0), "host kind decides before the path");
}

// === method and header fallback ===

#[test]
fn methods() {
    let r = router(vec![
        route(&["/a"]).methods(&[Method::GET, Method::POST]),
        route(&["/b"]),
    ]);
    let find = |m: Method, p: &str| r.find(None, &m, p, &HeaderMap::new()).copied();
    assert_eq!(find(Method::GET, "/a"), Some(0));
    assert_eq!(find(Method::POST, "/a"), Some(0));
    assert_eq!(find(Method::DELETE, "/a"), None);
    assert_eq!(find(Method::DELETE, "/b"), Some(1));
    assert_eq!(find(Method::from_bytes(b"PURGE").expect("method"), "/b"), Some(1));
}

#[test]
fn method_mismatch_falls_back_to_less_specific_routes() {
    let r = router(vec![
        route(&["/*"]),
        route(&["/users/{id}"]).methods(&[Method::PUT]),
        route(&["/users/1"]).methods(&[Method::GET]).hosts(&["api.example.com"]),
        route(&["/users/1"]).methods(&[Method::DELETE]).priority(5),
    ]);
    let find = |m: Method| {
        r.find(Some("api.example.com"), &m, "/users/1", &HeaderMap::new())
            .copied()
    };
    assert_eq!(find(Method::GET), Some(2));
    assert_eq!(find(Method::PUT), Some(1));
    assert_eq!(find(Method::DELETE), Some(3));
    assert_eq!(find(Method::POST), Some(0));
}

#[test]
fn headers_must_all_match_exactly() {
    let r = router(vec![
        route(&["/a"]).header("x-api-version", "2").header("x-tenant", "acme"),
        route(&["/a"]).header("x-api-version", "1"),
        route(&["/a/*"]),
    ]);
    let find = |h: &[(&'static str, &'static str)]| r.find(None, &Method::GET, "/a", &headers(h)).copied();
    assert_eq!(find(&[("x-api-version", "2"), ("x-tenant", "acme")]), Some(0));
    assert_eq!(find(&[("x-api-version", "2")]), Some(2), "a missing header falls back");
    assert_eq!(find(&[("x-api-version", "1"), ("x-tenant", "acme")]), Some(1));
    assert_eq!(find(&[("x-api-version", "3")]), Some(2));
    assert_eq!(
        find(&[("x-api-version", "2 "), ("x-tenant", "acme")]),
        Some(2),
        "values compare exactly"
    );
    assert_eq!(
        find(&[("x-api-version", "2"), ("x-tenant", "ACME")]),
        Some(2),
        "values are case-sensitive"
    );
    assert_eq!(
        find(&[("x-api-version", "3"), ("x-api-version", "1")]),
        Some(1),
        "any repeated value"
    );
    assert_eq!(find(&[]), Some(2));
}

#[test]
fn header_mismatch_falls_back_across_hosts() {
    let r = router(vec![
        route(&["/a"]).hosts(&["api.example.com"]).header("x-canary", "1"),
        route(&["/a"]).hosts(&["*.example.com"]).header("x-canary", "1"),
        route(&["/*"]),
    ]);
    let find =
        |host: &str, h: &[(&'static str, &'static str)]| r.find(Some(host), &Method::GET, "/a", &headers(h)).copied();
    assert_eq!(find("api.example.com", &[("x-canary", "1")]), Some(0));
    assert_eq!(find("web.example.com", &[("x-canary", "1")]), Some(1));
    assert_eq!(find("api.example.com", &[]), Some(2));
}

#[test]
fn fallback_to_lower_priority() {
    let r = router(vec![
        route(&["/*"]).priority(10).methods(&[Method::POST]),
        route(&["/a"]).priority(1),
    ]);
    assert_eq!(get(&r, None, "/a"), Some(1));
    assert_eq!(r.find(None, &Method::POST, "/a", &HeaderMap::new()).copied(), Some(0));
}

// === errors ===

#[test]
fn collects_every_error() {
    let defs = vec![
        (route(&["/ok"]), 0),
        (route(&["users", "/fine", "/a{id}"]), 1),
        (route(&["/*/x"]), 2),
        (route(&[]), 3),
        (route(&["/{id}/{id}"]).hosts(&["api.example.com", "a.*.com"]), 4),
        (route(&["/{}", "/{x", "/y}"]), 5),
    ];
    let errors = Router::new(defs).expect_err("invalid routes");
    let got: Vec<(usize, Option<usize>)> = errors.iter().map(|e| (e.route, e.path)).collect();
    assert_eq!(
        got,
        vec![
            (1, Some(0)),
            (1, Some(2)),
            (2, Some(0)),
            (3, None),
            (4, Some(0)),
            (4, None),
            (5, Some(0)),
            (5, Some(1)),
            (5, Some(2)),
        ]
    );
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        text[0],
        "routes[1].paths[0]: invalid path \"users\": must start with \"/\""
    );
    assert!(text[1].contains("whole segment"), "{}", text[1]);
    assert!(text[2].contains("only allowed as a final"), "{}", text[2]);
    assert_eq!(text[3], "routes[3]: a route needs at least one path");
    assert!(text[4].contains("duplicate parameter {id}"), "{}", text[4]);
    assert!(
        text[5].starts_with("routes[4]: hosts[1]: invalid host \"a.*.com\""),
        "{}",
        text[5]
    );
    assert!(text[6].contains("empty parameter"), "{}", text[6]);
    assert!(text[7].contains("unbalanced"), "{}", text[7]);
    assert!(text[8].contains("unbalanced"), "{}", text[8]);
}

// === scale ===

#[test]
fn ten_thousand_routes() {
    let n = 10_000;
    let mut defs = Vec::with_capacity(n + 3);
    for i in 0..n {
        let def = match i % 4 {
            0 => route(&[&format!("/svc{i}/items/{{id}}"), &format!("/svc{i}/static/*")]),
            1 => route(&[&format!("/svc{i}/items/{{id}}")]).hosts(&[&format!("h{i}.example.com")]),
            2 => route(&[&format!("/svc{i}/items/{{id}}")]).hosts(&[&format!("*.t{i}.example.com")]),
            _ => route(&[&format!("/svc{i}/items/{{id}}")]).methods(&[Method::POST]),
        };
        defs.push(def);
    }
    defs.push(route(&["/*"]).priority(-1)); // n: the catch-all
    defs.push(route(&["/svc7/items/special"])); // n + 1: a method-less exact beside a POST-only param route
    defs.push(route(&["/svc8/items/{id}"]).hosts(&["*.example.com"]).priority(1)); // n + 2
    let r = router(defs);
    assert_eq!(r.len(), n + 3);

    for i in (0..n).step_by(7).chain([0, 1, 2, 3, n - 4, n - 3, n - 2, n - 1]) {
        let path = format!("/svc{i}/items/42");
        let host = format!("h{i}.example.com");
        let wild = format!("a.t{i}.example.com");
        let want = match i % 4 {
            0 => Some(i),
            1 => Some(i),
            2 => Some(i),
            _ => Some(n),
        };
        let host_for = match i % 4 {
            1 => host.as_str(),
            2 => wild.as_str(),
            _ => "other.test",
        };
        assert_eq!(get(&r, Some(host_for), &path), want, "GET {host_for}{path}");
        if i % 4 == 3 {
            let post = r.find(Some(host_for), &Method::POST, &path, &HeaderMap::new()).copied();
            assert_eq!(post, Some(i), "POST {host_for}{path}");
        }
        if i % 4 == 1 || i % 4 == 2 {
            assert_eq!(
                get(&r, Some("other.test"), &path),
                Some(n),
                "wrong host falls to the catch-all"
            );
        }
        if i % 4 == 0 {
            assert_eq!(get(&r, None, &format!("/svc{i}/static/a/b")), Some(i));
        }
        assert_eq!(get(&r, None, &format!("/svc{i}/items")), Some(n));
        assert_eq!(get(&r, None, &format!("/svc{i}x/items/1")), Some(n));
    }
    assert_eq!(get(&r, None, "/svc7/items/special"), Some(n + 1));
    assert_eq!(get(&r, Some("x.example.com"), "/svc8/items/1"), Some(n + 2));
    assert_eq!(
        get(&r, Some("h8.example.com"), "/svc8/items/1"),
        Some(n + 2),
        "priority beats the exact path"
    );
    assert_eq!(get(&r, Some("h9.example.com"), "/svc9/items/1"), Some(9));
}

#[test]
fn with_values_shares_the_index() {
    let router = router(vec![route(&["/a"]), route(&["/b/*"])]);
    let other = router.with_values(vec!["one", "two"]).unwrap();
    assert!(other.shares_index(&router));
    assert_eq!(other.find(None, &Method::GET, "/b/c", &HeaderMap::new()), Some(&"two"));
    assert_eq!(other.values().collect::<Vec<_>>(), [&"one", &"two"]);
    assert_eq!(other.value(1), Some(&"two"));
    assert_eq!(router.with_values(vec![0]).unwrap_err(), [0]);
}

/// Every (host, path) of `requests` finds the same route in both routers.
fn same_answers(a: &Router<usize>, b: &Router<usize>, requests: &[(Option<&str>, &str)]) {
    for (host, path) in requests {
        let find = |r: &Router<usize>| r.find(*host, &Method::GET, path, &HeaderMap::new()).copied();
        assert_eq!(find(a), find(b), "{host:?} {path}");
    }
}

#[test]
fn a_derived_router_answers_as_a_fresh_build() {
    let before = vec![
        route(&["/a", "/a/{x}"]),
        route(&["/b/*"]).hosts(&["api.example.com"]),
        route(&["/c"]).hosts(&["*.example.com"]),
        route(&["/{y}/d"]),
        route(&["/*"]).priority(-1),
        route(&["/e"]).methods(&[Method::POST]),
        route(&["/f"]),
    ];
    let old = router(before.clone());
    // New paths, a path moved from one route to another, a host given up (its trie goes),
    // a priority raised, a method condition dropped, a route gone, routes added before,
    // between and after the others (ties go to the earlier route).
    let after: Vec<(Source, RouteDef)> = vec![
        (Source::New(route(&["/e"])), route(&["/e"])),
        (Source::New(route(&["/b/x", "/a2"])), route(&["/b/x", "/a2"])),
        (
            Source::New(route(&["/a"]).hosts(&["other.example.com"])),
            route(&["/a"]).hosts(&["other.example.com"]),
        ),
        (
            Source::New(route(&["/c", "/c/*"]).hosts(&["*.example.com"]).priority(5)),
            route(&["/c", "/c/*"]).hosts(&["*.example.com"]).priority(5),
        ),
        (Source::New(route(&["/f", "/g"])), route(&["/f", "/g"])),
        (Source::Kept(3), before[3].clone()),
        (Source::Kept(4), before[4].clone()),
        (Source::New(route(&["/e"])), route(&["/e"])),
        (Source::New(route(&["/h"])), route(&["/h"])),
    ];
    let derived = old
        .derive(after.iter().enumerate().map(|(i, (s, _))| (s.clone(), i)).collect())
        .unwrap();
    let fresh = router(after.into_iter().map(|(_, d)| d).collect());
    let requests = [
        (None, "/a"),
        (None, "/a/1"),
        (None, "/a2"),
        (None, "/b/x"),
        (Some("api.example.com"), "/b/x"),
        (Some("api.example.com"), "/b/y"),
        (Some("other.example.com"), "/a"),
        (Some("x.example.com"), "/c"),
        (Some("x.example.com"), "/c/d"),
        (None, "/z/d"),
        (None, "/e"),
        (None, "/f"),
        (None, "/g"),
        (None, "/h"),
        (None, "/nothing"),
    ];
    same_answers(&derived, &fresh, &requests);
    assert_eq!(derived.find(None, &Method::GET, "/e", &HeaderMap::new()), Some(&0));
    assert_eq!(derived.len(), 9);
    assert_eq!(
        derived.values().copied().collect::<Vec<_>>(),
        (0..9).collect::<Vec<_>>()
    );
    // The router derived from is as it was.
    same_answers(&old, &router(before), &requests);

    // Derived again and again (slots and order keys keep working), then reordered.
    let mut r = derived;
    for n in 0..40 {
        let mut routes: Vec<(Source, usize)> = (0..r.len()).map(|i| (Source::Kept(i), i)).collect();
        routes.insert(1, (Source::New(route(&[&format!("/n{n}")])), 99));
        r = r.derive(routes).unwrap();
        assert_eq!(
            r.find(None, &Method::GET, &format!("/n{n}"), &HeaderMap::new()),
            Some(&99)
        );
    }
    // Values are the routes' old positions: /n0 was pushed to 40, the second /e to 47.
    let reversed: Vec<(Source, usize)> = (0..r.len()).rev().map(|i| (Source::Kept(i), i)).collect();
    let r = r.derive(reversed).unwrap();
    assert_eq!(r.find(None, &Method::GET, "/n0", &HeaderMap::new()), Some(&40));
    assert_eq!(
        r.find(None, &Method::GET, "/e", &HeaderMap::new()),
        Some(&47),
        "now the earlier one"
    );
}

#[test]
fn a_bad_derivation_is_refused_whole() {
    let old = router(vec![route(&["/a"]), route(&["/b"])]);
    let errors = old
        .derive(vec![
            (Source::New(route(&["/a2"])), 0),
            (Source::New(route(&["/b{"])), 1),
        ])
        .unwrap_err();
    assert_eq!((errors[0].route, errors[0].path), (1, Some(0)), "{errors:?}");
    assert!(old.derive(vec![(Source::Kept(2), 0)]).is_err(), "no route 2");
    assert!(
        old.derive(vec![(Source::Kept(0), 0), (Source::Kept(0), 1)]).is_err(),
        "kept twice"
    );
}
