//! A socket with nginx-style I/O timeouts: `read` bounds the peer's silence since our last
//! write or its last byte, `send` bounds how long a write may stay blocked.
//!
//! Upstream connections have both. Timing the socket rather than each request costs one timer
//! per connection instead of one per request, and also covers a response body that stalls
//! halfway. A pooled connection left idle for `read` is closed by the same rule, as nginx
//! closes idle upstream keep-alives. Client connections have only `send` (nginx's
//! `send_timeout`): a client that stops reading does not hold its connection for good.
//!
//! Both timers are lazy: created the first time a read or write would block, a read only
//! records when the socket last made progress (a clock read), and the read timer, when it
//! fires, re-arms itself for the rest of the silence if there was progress since. Re-arming a
//! tokio timer on every read would cost more than the read.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep, sleep_until};

pub struct TimedIo<T> {
    io: T,
    /// `None`: reads wait as long as the peer likes.
    read_timeout: Option<Duration>,
    send_timeout: Duration,
    read_timer: Option<Pin<Box<Sleep>>>,
    /// When bytes last moved either way: the peer's silence is counted from here.
    last_progress: Instant,
    write_timer: Option<Pin<Box<Sleep>>>,
    write_armed: bool,
}

impl<T> TimedIo<T> {
    pub fn new(io: T, read_timeout: Duration, send_timeout: Duration) -> Self {
        Self {
            io,
            read_timeout: Some(read_timeout),
            send_timeout,
            read_timer: None,
            last_progress: Instant::now(),
            write_timer: None,
            write_armed: false,
        }
    }

    /// Only writes are timed (a client connection).
    pub fn send_only(io: T, send_timeout: Duration) -> Self {
        Self {
            read_timeout: None,
            ..Self::new(io, send_timeout, send_timeout)
        }
    }
}

/// `timer` set to fire at `deadline`, created if it does not exist yet.
fn arm(timer: &mut Option<Pin<Box<Sleep>>>, deadline: Instant) -> Pin<&mut Sleep> {
    match timer {
        Some(t) => {
            t.as_mut().reset(deadline);
            t.as_mut()
        }
        None => timer.insert(Box::pin(sleep_until(deadline))).as_mut(),
    }
}

impl<T> TimedIo<T> {
    pub fn get_ref(&self) -> &T {
        &self.io
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"))
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if this.read_timeout.is_some() {
                    this.last_progress = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                let Some(limit) = this.read_timeout else {
                    return Poll::Pending;
                };
                let mut timer = match this.read_timer.as_mut() {
                    Some(t) => t.as_mut(),
                    None => arm(&mut this.read_timer, this.last_progress + limit),
                };
                loop {
                    match timer.as_mut().poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(()) => {
                            let deadline = this.last_progress + limit;
                            if deadline <= Instant::now() {
                                return Poll::Ready(Err(timed_out("read")));
                            }
                            // There was progress since the timer was set: wait out the rest.
                            timer.as_mut().reset(deadline);
                        }
                    }
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> TimedIo<T> {
    fn on_write<R>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match polled {
            Poll::Ready(r) => {
                self.write_armed = false;
                // We just spoke: the peer's silence is counted from now (when it is timed:
                // the clock read is not free).
                if self.read_timeout.is_some() {
                    self.last_progress = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timer = match self.write_timer.as_mut() {
                    Some(t) if self.write_armed => t.as_mut(),
                    _ => arm(&mut self.write_timer, Instant::now() + self.send_timeout),
                };
                self.write_armed = true;
                match timer.poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(timed_out("send"))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.on_write(cx, polled)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.on_write(cx, polled)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_flush(cx);
        this.on_write(cx, polled)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_shutdown(cx);
        this.on_write(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_times_out_after_our_write() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut io = TimedIo::new(a, Duration::from_secs(5), Duration::from_secs(5));
        io.write_all(b"ping").await.expect("write");
        let mut got = [0u8; 4];
        b.read_exact(&mut got).await.expect("peer reads");
        let mut buf = [0u8; 8];
        let err = io.read(&mut buf).await.expect_err("times out");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_answers_does_not() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut io = TimedIo::new(a, Duration::from_secs(5), Duration::from_secs(5));
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(4)).await;
            b.write_all(b"pong").await.expect("peer writes");
            b
        });
        let mut buf = [0u8; 4];
        io.read_exact(&mut buf).await.expect("answered in time");
        assert_eq!(&buf, b"pong");
    }

    const SEND: Duration = Duration::from_secs(60);

    /// Takes `room` bytes, then blocks every write for good.
    struct Stuck {
        room: usize,
    }

    impl AsyncRead for Stuck {
        fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, _: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for Stuck {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            if self.room == 0 {
                return Poll::Pending;
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_is_cut_after_the_send_timeout() {
        let mut io = TimedIo::send_only(Stuck { room: 10 }, SEND);
        let started = Instant::now();
        let err = io.write_all(&[0u8; 100]).await.expect_err("a blocked write ends");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), SEND);
    }

    #[tokio::test(start_paused = true)]
    async fn writes_that_go_through_never_time_out() {
        let mut io = TimedIo::send_only(Stuck { room: usize::MAX }, SEND);
        for _ in 0..3 {
            io.write_all(b"data").await.expect("written");
            tokio::time::advance(SEND * 2).await;
        }
        io.write_all(b"more").await.expect("written");
    }

    #[tokio::test(start_paused = true)]
    async fn send_only_reads_wait_as_long_as_the_peer_likes() {
        let (a, _b) = tokio::io::duplex(64);
        let mut io = TimedIo::send_only(a, SEND);
        let mut buf = [0u8; 4];
        let waited = tokio::time::timeout(SEND * 10, io.read(&mut buf)).await;
        assert!(waited.is_err(), "the read ended: {waited:?}");
    }
}
