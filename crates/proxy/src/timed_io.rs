//! Upstream socket with nginx-style I/O timeouts: `read` bounds the upstream's silence since
//! our last write or its last byte, `send` bounds how long a write may stay blocked.
//!
//! Timing the socket rather than each request costs one timer per connection instead of one
//! per request, and also covers a response body that stalls halfway. A pooled connection left
//! idle for `read` is closed by the same rule, as nginx closes idle upstream keep-alives.
//!
//! The read timer is lazy: I/O only records when the socket last made progress (a clock read),
//! and the timer, when it fires, re-arms itself for the rest of the silence if there was
//! progress since. Re-arming a tokio timer on every read would cost more than the read.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep, sleep};

pub struct TimedIo<T> {
    io: T,
    read_timeout: Duration,
    send_timeout: Duration,
    read_timer: Pin<Box<Sleep>>,
    /// When bytes last moved either way: the upstream's silence is counted from here.
    last_progress: Instant,
    write_timer: Pin<Box<Sleep>>,
    write_armed: bool,
}

impl<T> TimedIo<T> {
    pub fn new(io: T, read_timeout: Duration, send_timeout: Duration) -> Self {
        Self {
            io,
            read_timeout,
            send_timeout,
            read_timer: Box::pin(sleep(read_timeout)),
            last_progress: Instant::now(),
            write_timer: Box::pin(sleep(send_timeout)),
            write_armed: false,
        }
    }
}

impl<T> TimedIo<T> {
    pub fn get_ref(&self) -> &T {
        &self.io
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("upstream {what} timed out"))
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.last_progress = Instant::now();
                Poll::Ready(r)
            }
            Poll::Pending => loop {
                match this.read_timer.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) => {
                        let deadline = this.last_progress + this.read_timeout;
                        if deadline <= Instant::now() {
                            return Poll::Ready(Err(timed_out("read")));
                        }
                        // There was progress since the timer was set: wait out the rest.
                        this.read_timer.as_mut().reset(deadline);
                    }
                }
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> TimedIo<T> {
    fn on_write<R>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match polled {
            Poll::Ready(r) => {
                self.write_armed = false;
                // We just spoke: the upstream's silence is counted from now.
                self.last_progress = Instant::now();
                Poll::Ready(r)
            }
            Poll::Pending => {
                if !self.write_armed {
                    self.write_armed = true;
                    self.write_timer.as_mut().reset(Instant::now() + self.send_timeout);
                }
                match self.write_timer.as_mut().poll(cx) {
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
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
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
}
