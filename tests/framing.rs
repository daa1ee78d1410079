//! RFC 9112 framing: every ambiguous or malformed request is answered `400` (the gateway's
//! JSON error), the connection is closed, and nothing reaches the upstream. Well-formed but
//! unusual framing (chunked bodies, trailers, pipelining, HTTP/1.0) still works.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;
use support::{Gateway, RawConn, RawResponse, Upstream};

/// Sends `raw` on a new connection; `Err` says how the answer differs from "400 JSON, then close".
async fn rejected(gw: &Gateway, raw: &[u8]) -> Result<(), String> {
    let mut conn = RawConn::connect(gw.addr()).await;
    conn.try_send(raw).await;
    let resp: RawResponse = conn
        .read_response()
        .await
        .ok_or("the connection was closed without a response")?;
    if resp.status != 400 {
        return Err(format!("status {} (want 400), body {:?}", resp.status, resp.text()));
    }
    let json = resp
        .check_error(400)
        .map_err(|e| format!("400 but not the JSON error ({e}); headers {:?}", resp.headers));
    if !conn.closed_within(Duration::from_secs(5)).await {
        return Err("400, but the connection stayed open".into());
    }
    json.map(|_| ())
}

/// Runs every case, then checks the upstream saw only a final good request. Fails listing
/// every case that was not rejected properly.
async fn check_all_rejected(cases: &[(&str, &[u8])], whole_requests_only: bool) {
    let up = Upstream::start("a").await;
    let gw = Gateway::proxying_to(&up).await;
    let mut failures = Vec::new();
    for (name, raw) in cases {
        if let Err(e) = rejected(&gw, raw).await {
            failures.push(format!("- {name}: {e}\n    sent {:?}", String::from_utf8_lossy(raw)));
        }
    }
    // A good request after all of them: if anything had been smuggled through, the upstream
    // would have seen more than this one.
    let mut conn = RawConn::connect(gw.addr()).await;
    conn.send(b"GET /after HTTP/1.1\r\nHost: h.test\r\n\r\n").await;
    let resp = conn.read_response().await.expect("a response to a good request");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen: Vec<String> = up
        .received()
        .iter()
        .map(|e| format!("{} {}", e.method(), e.path()))
        .collect();
    if seen != ["GET /after"] {
        failures.push(format!("- the upstream received {seen:?}; want only [\"GET /after\"]"));
    }
    if !whole_requests_only && up.requests() != 1 {
        failures.push(format!(
            "- the upstream received {} request heads; want only the good one",
            up.requests()
        ));
    }
    assert!(
        failures.is_empty(),
        "malformed requests not rejected properly:\n{}",
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_with_transfer_encoding_is_400() {
    check_all_rejected(
        &[
            (
                "CL.TE",
                b"POST /s HTTP/1.1\r\nHost: h.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
            ),
            (
                "TE.CL",
                b"POST /s HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGPOST /smuggled HTTP/1.1\r\nHost: h.test\r\nContent-Length: 15\r\n\r\nx=1\r\n0\r\n\r\n",
            ),
            (
                "CL.TE with TE behind a bare LF",
                b"POST /s HTTP/1.1\r\nHost: h.test\r\nContent-Length: 6\r\nX-A: a\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
            ),
            (
                "CL.TE with header names in odd case",
                b"POST /s HTTP/1.1\r\nHost: h.test\r\ncontent-LENGTH: 6\r\nTRANSFER-encoding: chunked\r\n\r\n0\r\n\r\nG",
            ),
            (
                "CL with TE chunked, identity",
                b"POST /s HTTP/1.1\r\nHost: h.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked, identity\r\n\r\nabc",
            ),
        ],
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_encoding_not_ending_in_chunked_is_400() {
    check_all_rejected(
        &[
            (
                "TE gzip",
                b"POST /s HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: gzip\r\n\r\nabc",
            ),
            (
                "TE xchunked",
                b"POST /s HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
            ),
            (
                "TE chunked then identity in two fields",
                b"POST /s HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
            ),
            (
                "TE chunked twice",
                b"POST /s HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            ),
            (
                "TE in an HTTP/1.0 request",
                b"POST /s HTTP/1.0\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            ),
            (
                "TE with a space before the colon",
                b"POST /s HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
            ),
        ],
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_or_duplicate_content_length_is_400() {
    check_all_rejected(
        &[
            (
                "two different Content-Length",
                b"POST /s HTTP/1.1\r\nHost: h.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            ),
            (
                "two equal Content-Length",
                b"POST /s HTTP/1.1\r\nHost: h.test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
            ),
            (
                "Content-Length abc",
                b"POST /s HTTP/1.1\r\nHost: h.test\r\nContent-Length: abc\r\n\r\nhello",
            ),
            (
                "Content-Length -1",
                b"POST /s HTTP/1.1\r\nHost: h.test\r\nContent-Length: -1\r\n\r\nhello",
            ),
            (
                "Content-Length +5",
                b"POST /s HTTP/1.1\r\nHost: h.test\r\nContent-Length: +5\r\n\r\nhello",
            ),
            (
                "Content-Length 0x5",
                b"POST /s HTTP/1.1\r\nHost: h.test\r\nContent-Length: 0x5\r\n\r\nhello",
            ),
            (
                "Content-Length 5 5",
                b"POST /s HTTP/1.1\r\nHost: h.test\r\nContent-Length: 5 5\r\n\r\nhello",
            ),
            (
                "Content-Length overflowing u64",
                b"POST /s HTTP/1.1\r\nHost: h.test\r\nContent-Length: 184467440737095516160\r\n\r\nhello",
            ),
        ],
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_chunk_sizes_are_400() {
    // The head of these requests is valid; the error is in the body. No complete request may
    // reach the upstream, and the client gets a 400 and a closed connection.
    check_all_rejected(
        &[
            (
                "chunk size zz",
                b"POST /s HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            ),
            (
                "chunk size -5",
                b"POST /s HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
            ),
            (
                "chunk size overflowing u64",
                b"POST /s HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n",
            ),
            (
                "chunk data longer than its size",
                b"POST /s HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\n",
            ),
        ],
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_header_names_and_bytes_are_400() {
    check_all_rejected(
        &[
            (
                "space in a header name",
                b"GET /s HTTP/1.1\r\nHost: h.test\r\nBad Header: x\r\n\r\n",
            ),
            (
                "space before the colon",
                b"GET /s HTTP/1.1\r\nHost: h.test\r\nX-Test : 1\r\n\r\n",
            ),
            (
                "control byte in a header name",
                b"GET /s HTTP/1.1\r\nHost: h.test\r\nX-T\x01st: 1\r\n\r\n",
            ),
            (
                "non-ASCII header name",
                "GET /s HTTP/1.1\r\nHost: h.test\r\nX-T\u{e9}st: 1\r\n\r\n".as_bytes(),
            ),
            (
                "empty header name",
                b"GET /s HTTP/1.1\r\nHost: h.test\r\n: nameless\r\n\r\n",
            ),
            (
                "header line without a colon",
                b"GET /s HTTP/1.1\r\nHost: h.test\r\nX-Test\r\n\r\n",
            ),
            (
                "NUL in a header value",
                b"GET /s HTTP/1.1\r\nHost: h.test\r\nX-Test: a\x00b\r\n\r\n",
            ),
            (
                "bare CR in a header value",
                b"GET /s HTTP/1.1\r\nHost: h.test\r\nX-Test: a\rb\r\n\r\n",
            ),
            (
                "tab before the colon",
                b"GET /s HTTP/1.1\r\nHost: h.test\r\nX-Test\t: 1\r\n\r\n",
            ),
        ],
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_request_lines_are_400() {
    check_all_rejected(
        &[
            (
                "space in the request target",
                b"GET /a b HTTP/1.1\r\nHost: h.test\r\n\r\n",
            ),
            (
                "NUL in the request target",
                b"GET /a\x00b HTTP/1.1\r\nHost: h.test\r\n\r\n",
            ),
            (
                "two spaces after the method",
                b"GET  /s HTTP/1.1\r\nHost: h.test\r\n\r\n",
            ),
            (
                "a method that is not a token",
                b"G(T /s HTTP/1.1\r\nHost: h.test\r\n\r\n",
            ),
            (
                "a protocol that is not HTTP",
                b"GET /s HTTX/1.1\r\nHost: h.test\r\n\r\n",
            ),
        ],
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obs_fold_is_400() {
    check_all_rejected(
        &[
            (
                "obs-fold with a space",
                b"GET /s HTTP/1.1\r\nHost: h.test\r\nX-Test: a\r\n b\r\n\r\n",
            ),
            (
                "obs-fold with a tab",
                b"GET /s HTTP/1.1\r\nHost: h.test\r\nX-Test: a\r\n\tb\r\n\r\n",
            ),
            (
                "whitespace before the first header",
                b"GET /s HTTP/1.1\r\n Host: h.test\r\nX-Test: a\r\n\r\n",
            ),
        ],
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_duplicate_or_invalid_host_is_400() {
    check_all_rejected(
        &[
            ("HTTP/1.1 without Host", b"GET /s HTTP/1.1\r\nX-Test: 1\r\n\r\n"),
            (
                "two equal Host fields",
                b"GET /s HTTP/1.1\r\nHost: h.test\r\nHost: h.test\r\n\r\n",
            ),
            (
                "two different Host fields",
                b"GET /s HTTP/1.1\r\nHost: h.test\r\nHost: evil.test\r\n\r\n",
            ),
            ("Host with a space", b"GET /s HTTP/1.1\r\nHost: bad host\r\n\r\n"),
            ("Host with a slash", b"GET /s HTTP/1.1\r\nHost: h.test/x\r\n\r\n"),
            ("Host with userinfo", b"GET /s HTTP/1.1\r\nHost: user@h.test\r\n\r\n"),
            (
                "Host with a bad port",
                b"GET /s HTTP/1.1\r\nHost: h.test:notaport\r\n\r\n",
            ),
        ],
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn well_formed_unusual_framing_is_served() {
    let up = Upstream::start("a").await;
    let gw = Gateway::proxying_to(&up).await;

    let body_len = |resp: &RawResponse| -> u64 {
        assert_eq!(resp.status, 200, "{}", resp.text());
        let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        v["body_len"].as_u64().unwrap()
    };

    // A chunked body with an extension and trailers arrives whole.
    let mut conn = RawConn::connect(gw.addr()).await;
    conn.send(
        b"POST /chunked HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    )
    .await;
    assert_eq!(body_len(&conn.read_response().await.unwrap()), 11);

    // `Chunked` is case-insensitive.
    conn.send(b"POST /chunked2 HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        .await;
    assert_eq!(body_len(&conn.read_response().await.unwrap()), 3);

    // Two pipelined requests in one write are answered in order.
    conn.send(
        b"GET /p1 HTTP/1.1\r\nHost: h.test\r\n\r\nPOST /p2 HTTP/1.1\r\nHost: h.test\r\nContent-Length: 4\r\n\r\nbody",
    )
    .await;
    let r1 = conn.read_response().await.unwrap();
    let r2 = conn.read_response().await.unwrap();
    let path = |r: &RawResponse| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["path"].clone();
    assert_eq!((path(&r1), path(&r2)), ("/p1".into(), "/p2".into()));
    assert_eq!(body_len(&r2), 4);

    // HTTP/1.0 needs no Host.
    let mut conn = RawConn::connect(gw.addr()).await;
    conn.send(b"GET /old HTTP/1.0\r\n\r\n").await;
    let resp = conn.read_response().await.expect("a response to HTTP/1.0");
    assert_eq!(resp.status, 200, "{}", resp.text());

    let paths: Vec<String> = up.received().iter().map(|e| e.path().to_owned()).collect();
    assert_eq!(paths, ["/chunked", "/chunked2", "/p1", "/p2", "/old"]);
}

/// The path the echo upstream saw, from a 200 it answered.
fn path_of(r: &RawResponse) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["path"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_management_and_request_forms() {
    let up = Upstream::start("a").await;
    let gw = Gateway::proxying_to(&up).await;

    // HTTP/1.0 without keep-alive: the connection closes after the response.
    let mut conn = RawConn::connect(gw.addr()).await;
    conn.send(b"GET /ten HTTP/1.0\r\nHost: h.test\r\n\r\n").await;
    assert_eq!(path_of(&conn.read_response().await.unwrap()), "/ten");
    assert!(
        conn.closed_within(Duration::from_secs(5)).await,
        "HTTP/1.0 connection left open"
    );

    // `Connection: close` from an HTTP/1.1 client is honoured.
    let mut conn = RawConn::connect(gw.addr()).await;
    conn.send(b"GET /close HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n\r\n")
        .await;
    let resp = conn.read_response().await.unwrap();
    assert_eq!(path_of(&resp), "/close");
    assert!(
        conn.closed_within(Duration::from_secs(5)).await,
        "Connection: close left open"
    );

    // The absolute form of the request target (RFC 9112 3.2.2: a server must accept it).
    let mut conn = RawConn::connect(gw.addr()).await;
    conn.send(b"GET http://h.test/absolute?q=1 HTTP/1.1\r\nHost: h.test\r\n\r\n")
        .await;
    assert_eq!(path_of(&conn.read_response().await.unwrap()), "/absolute");

    // Expect: 100-continue: the client is told to go on, then its body arrives.
    let mut conn = RawConn::connect(gw.addr()).await;
    conn.send(b"POST /expect HTTP/1.1\r\nHost: h.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await;
    let interim = conn.read_response().await.expect("an answer to Expect: 100-continue");
    assert_eq!(interim.status, 100, "{:?}", interim.headers);
    conn.send(b"hello").await;
    let resp = conn.read_response().await.unwrap();
    assert_eq!(path_of(&resp), "/expect");
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(v["body_len"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_but_unusual_heads_are_served() {
    let up = Upstream::start("a").await;
    let gw = Gateway::proxying_to(&up).await;
    let many: String = (0..60).map(|i| format!("X-Many-{i}: {i}\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "obs-text in a header value",
            b"GET /s HTTP/1.1\r\nHost: h.test\r\nX-Name: caf\xe9\r\n\r\n".to_vec(),
        ),
        (
            "a tab inside a header value",
            b"GET /s HTTP/1.1\r\nHost: h.test\r\nX-Tab: a\tb\r\n\r\n".to_vec(),
        ),
        (
            "an empty header value",
            b"GET /s HTTP/1.1\r\nHost: h.test\r\nX-Empty:\r\n\r\n".to_vec(),
        ),
        (
            "no space after the colon",
            b"GET /s HTTP/1.1\r\nHost:h.test\r\nX-A:1\r\n\r\n".to_vec(),
        ),
        (
            "an IPv6 literal Host",
            b"GET /s HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n".to_vec(),
        ),
        (
            "an IPv4 Host with a port",
            b"GET /s HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n".to_vec(),
        ),
        (
            "an upper-case Host",
            b"GET /s HTTP/1.1\r\nHost: H.TEST\r\n\r\n".to_vec(),
        ),
        (
            "60 headers",
            format!("GET /s HTTP/1.1\r\nHost: h.test\r\n{many}\r\n").into_bytes(),
        ),
        (
            "a quoted chunk extension",
            b"POST /s HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\n\r\n3;name=\"a;b\"\r\nabc\r\n0\r\n\r\n"
                .to_vec(),
        ),
    ];
    let mut failures = Vec::new();
    for (name, raw) in &cases {
        let mut conn = RawConn::connect(gw.addr()).await;
        conn.send(raw).await;
        match conn.read_response().await {
            Some(r) if r.status == 200 => {}
            Some(r) => failures.push(format!("- {name}: status {} {}", r.status, r.text())),
            None => failures.push(format!("- {name}: closed without a response")),
        }
    }
    assert!(failures.is_empty(), "valid requests refused:\n{}", failures.join("\n"));
    assert_eq!(up.completed(), cases.len());
    let obs = &up.received()[0];
    assert_eq!(obs.headers("x-name").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_head_answers_small_bodies_and_dates() {
    let up = Upstream::start("a").await;
    let gw = Gateway::proxying_to(&up).await;

    // Twenty requests in one write are answered in order, each with a Date.
    let mut conn = RawConn::connect(gw.addr()).await;
    let burst: String = (0..20)
        .map(|i| format!("GET /p{i} HTTP/1.1\r\nHost: h.test\r\nX-N: {i}\r\n\r\n"))
        .collect();
    conn.send(burst.as_bytes()).await;
    for i in 0..20 {
        let resp = conn.read_response().await.expect("an answer");
        assert_eq!(path_of(&resp), format!("/p{i}"));
        assert!(resp.header("date").is_some(), "{:?}", resp.headers);
    }

    // HEAD gets the head only (its Content-Length says what a GET would get); the next
    // request on the connection reads cleanly after it.
    conn.send(b"HEAD /h HTTP/1.1\r\nHost: h.test\r\n\r\nGET /after HTTP/1.1\r\nHost: h.test\r\n\r\n")
        .await;
    let head = conn.read_head_answer().await.expect("an answer to HEAD");
    assert_eq!(head.status, 200, "{:?}", head.headers);
    assert_eq!(path_of(&conn.read_response().await.expect("an answer")), "/after");

    // A small body that comes with its head, a body that comes later, and a bodiless request
    // after them, on the same connection.
    conn.send(b"POST /with-body HTTP/1.1\r\nHost: h.test\r\nContent-Length: 2\r\n\r\nhi")
        .await;
    let resp = conn.read_response().await.expect("an answer");
    assert_eq!(path_of(&resp), "/with-body");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&resp.body).unwrap()["body_len"],
        2
    );
    conn.send(b"PUT /later HTTP/1.1\r\nHost: h.test\r\nContent-Length: 5\r\n\r\nab")
        .await;
    conn.send(b"cde").await;
    let resp = conn.read_response().await.expect("an answer");
    assert_eq!(path_of(&resp), "/later");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&resp.body).unwrap()["body_len"],
        5
    );
    conn.send(b"GET /then HTTP/1.1\r\nHost: h.test\r\n\r\n").await;
    assert_eq!(path_of(&conn.read_response().await.expect("an answer")), "/then");
    let bodies: Vec<u64> = up.received().iter().rev().take(3).map(|e| e.body_len()).collect();
    assert_eq!(bodies, [0, 5, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_heads_are_served_and_too_long_ones_get_431() {
    let up = Upstream::start("a").await;
    let gw = Gateway::proxying_to(&up).await;

    // 20 KB of header: more than one read buffer, under the 64 KB limit.
    let mut conn = RawConn::connect(gw.addr()).await;
    let long = "v".repeat(20 * 1024);
    conn.send(format!("GET /long HTTP/1.1\r\nHost: h.test\r\nX-Long: {long}\r\n\r\n").as_bytes())
        .await;
    let resp = conn.read_response().await.expect("an answer");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = up.received();
    assert_eq!(seen[0].header("x-long").as_deref(), Some(long.as_str()));

    // 70 KB and no end of head in sight: 431 and the connection closed, without waiting
    // for more.
    let mut conn = RawConn::connect(gw.addr()).await;
    let huge = "v".repeat(70 * 1024);
    conn.send(format!("GET /huge HTTP/1.1\r\nHost: h.test\r\nX-Huge: {huge}").as_bytes())
        .await;
    let resp = conn.read_response().await.expect("an answer");
    resp.assert_error(431);
    assert!(conn.closed_within(Duration::from_secs(5)).await, "left open");
    assert_eq!(up.requests(), 1);
}
