//! limit-conn through the real binary: at most `max` requests in flight per key against a
//! held (slow) upstream, 503 past it, and the place given back on every way a request ends:
//! a normal answer, an upstream error, a timeout, and a client that goes away.

mod support;

use support::{Client, DEADLINE, Gateway, RawConn, Upstream, eventually, eventually_async, refused_addr};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_in_flight_then_503() {
    let slow = Upstream::builder("slow").hold().start().await;
    let gw = Gateway::with(
        r#"
routes:
  - { id: r, paths: ["/*"], upstream: { nodes: [{ address: "{{slow}}" }] }, plugins: { limit-conn: { max: 2 } } }
"#,
    )
    .var("slow", &slow.address())
    .start()
    .await;
    let c = Client::new();
    let held: Vec<_> = (0..2)
        .map(|_| {
            let (c, url) = (c.clone(), gw.url("/held"));
            tokio::spawn(async move { c.get(&url).send().await.status })
        })
        .collect();
    eventually("both requests to reach the upstream", DEADLINE, || {
        (slow.requests() == 2).then_some(())
    })
    .await;
    let third = c.get(&gw.url("/third")).send().await;
    let message = third.assert_error(503);
    assert!(message.contains("too many concurrent requests"), "{message}");
    assert_eq!(slow.requests(), 2, "the refused request never reached the upstream");

    slow.release();
    for h in held {
        assert_eq!(h.await.expect("task"), 200);
    }
    // Every place is back: two at once pass again.
    let (a, b) = tokio::join!(c.get(&gw.url("/a")).send(), c.get(&gw.url("/b")).send());
    assert_eq!((a.status, b.status), (200, 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_counted_apart() {
    let slow = Upstream::builder("slow").hold().start().await;
    let gw = Gateway::with(
        r#"
routes:
  - { id: r, paths: ["/*"], upstream: { nodes: [{ address: "{{slow}}" }] }, plugins: { limit-conn: { max: 1, key: "header:x-tenant" } } }
"#,
    )
    .var("slow", &slow.address())
    .start()
    .await;
    let c = Client::new();
    let a = {
        let req = c.get(&gw.url("/a")).header("x-tenant", "a");
        tokio::spawn(async move { req.send().await.status })
    };
    eventually("tenant a's request upstream", DEADLINE, || {
        (slow.requests() == 1).then_some(())
    })
    .await;
    c.get(&gw.url("/a2"))
        .header("x-tenant", "a")
        .send()
        .await
        .assert_error(503);
    let b = {
        let req = c.get(&gw.url("/b")).header("x-tenant", "b");
        tokio::spawn(async move { req.send().await.status })
    };
    eventually("tenant b's request upstream too", DEADLINE, || {
        (slow.requests() == 2).then_some(())
    })
    .await;
    slow.release();
    assert_eq!((a.await.expect("a"), b.await.expect("b")), (200, 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_timeouts_give_the_place_back() {
    let slow = Upstream::builder("slow").hold().start().await;
    let gw = Gateway::with(
        r#"
routes:
  - { id: dead, paths: [/dead], upstream: { nodes: [{ address: "{{dead}}" }], retries: 0 }, plugins: { limit-conn: { max: 1 } } }
  - { id: slow, paths: [/slow], upstream: { nodes: [{ address: "{{slow}}" }], timeout: { read: 200ms }, retries: 0 }, plugins: { limit-conn: { max: 1 } } }
"#,
    )
    .var("dead", &refused_addr())
    .var("slow", &slow.address())
    .start()
    .await;
    let c = Client::new();
    for _ in 0..3 {
        c.get(&gw.url("/dead")).send().await.assert_error(502);
    }
    for _ in 0..3 {
        c.get(&gw.url("/slow")).send().await.assert_error(504);
    }
    slow.release();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_going_away_gives_the_place_back() {
    let slow = Upstream::builder("slow").hold().start().await;
    let gw = Gateway::with(
        r#"
routes:
  - { id: r, paths: ["/*"], upstream: { nodes: [{ address: "{{slow}}" }] }, plugins: { limit-conn: { max: 1 } } }
"#,
    )
    .var("slow", &slow.address())
    .start()
    .await;
    let mut first = RawConn::connect(gw.addr()).await;
    first.send(b"GET /first HTTP/1.1\r\nHost: t\r\n\r\n").await;
    eventually("the first request upstream", DEADLINE, || {
        (slow.requests() == 1).then_some(())
    })
    .await;
    let c = Client::new();
    c.get(&gw.url("/refused")).send().await.assert_error(503);
    drop(first);

    // Once the gateway has seen the client leave, the next request is admitted (it reaches
    // the held upstream) instead of refused.
    let upstream = &slow;
    eventually_async("the place to be given back", DEADLINE, || {
        let c = c.clone();
        let url = gw.url("/next");
        let before = upstream.requests();
        async move {
            let attempt = tokio::spawn(async move { c.get(&url).send().await.status });
            let admitted = loop {
                if attempt.is_finished() {
                    break false;
                }
                if upstream.requests() > before {
                    break true;
                }
                tokio::time::sleep(support::POLL).await;
            };
            admitted.then_some(())
        }
    })
    .await;
    slow.release();
}
