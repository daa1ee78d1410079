//! Loopback ports for tests running in parallel.

use std::net::TcpListener;

/// A port that was free a moment ago: bound on 127.0.0.1:0 and released.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// `127.0.0.1:PORT` where nothing listens: connecting to it is refused.
pub fn refused_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}
