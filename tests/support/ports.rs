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
