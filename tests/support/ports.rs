//! Loopback ports for tests running in parallel.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A port that was free a moment ago: bound on 127.0.0.1:0 and released.
///
/// Never the same port twice in one test process: tests run in parallel, and the kernel may
/// hand a just-released port to the next `bind(0)`. Two gateways given one port would both
/// bind it (they use SO_REUSEPORT) and split each other's connections.
pub fn free_port() -> u16 {
    unclaimed().local_addr().expect("local_addr").port()
}

/// A listener on a loopback port the kernel picked, for a server the test starts itself:
/// bound at once (no window in which another process can take the port), and its port
/// recorded so that [`free_port`] never hands it to a gateway.
pub fn bound_listener() -> tokio::net::TcpListener {
    let l = unclaimed();
    l.set_nonblocking(true).expect("nonblocking");
    tokio::net::TcpListener::from_std(l).expect("tokio listener")
}

/// Bound on 127.0.0.1:0, on a port this process never handed out before.
fn unclaimed() -> TcpListener {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local_addr").port();
        let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if handed.get_or_insert_with(HashSet::new).insert(port) {
            return l;
        }
    }
}

/// `127.0.0.1:PORT` where nothing listens: connecting to it is refused.
pub fn refused_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// A listening socket whose accept queue is full and never drained: the kernel drops new SYNs,
/// so connecting to it neither succeeds nor is refused, and only a connect timeout ends it.
pub struct Blackhole {
    addr: std::net::SocketAddr,
    _listener: tokio::net::TcpListener,
    _fillers: Vec<tokio::net::TcpStream>,
}

impl Blackhole {
    pub async fn start() -> Blackhole {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind("127.0.0.1:0".parse().unwrap()).expect("bind");
        let listener = socket.listen(1).expect("listen");
        let addr = listener.local_addr().expect("addr");
        let mut fillers = Vec::new();
        // Fill the queue until a connection attempt hangs.
        loop {
            let attempt = tokio::time::timeout(
                std::time::Duration::from_millis(300),
                tokio::net::TcpStream::connect(addr),
            )
            .await;
            match attempt {
                Ok(Ok(s)) => fillers.push(s),
                Ok(Err(e)) => panic!("connecting to fill the blackhole: {e}"),
                Err(_) => break,
            }
            assert!(fillers.len() < 64, "the accept queue never filled");
        }
        Blackhole {
            addr,
            _listener: listener,
            _fillers: fillers,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }
}
