//! Flushing a background writer thread (the access log's writer, the span exporter).
//!
//! The asking side ([`Flusher`]) sends the thread an acknowledgement channel and wakes it;
//! the thread takes every request waiting ([`Requests::take`]), writes out what it holds,
//! then answers each ([`Taken::answer`]). Dropping the [`Flusher`] closes the channel and
//! wakes the thread: it writes what is left and stops.

use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::thread::Thread;
use std::time::{Duration, Instant};

type Ack = SyncSender<()>;

/// The two ends: the sender goes into a [`Flusher`] once the thread is spawned.
pub fn channel() -> (SyncSender<Ack>, Requests) {
    let (tx, rx) = sync_channel(16);
    (tx, Requests(rx))
}

pub struct Flusher {
    requests: SyncSender<Ack>,
    thread: Thread,
}

impl Flusher {
    pub fn new(requests: SyncSender<Ack>, thread: Thread) -> Self {
        Self { requests, thread }
    }

    pub fn thread(&self) -> &Thread {
        &self.thread
    }

    /// Has the thread write out everything queued so far, waiting at most `timeout`; false
    /// if that was not enough.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (ack, done) = sync_channel(1);
        let mut msg = ack;
        loop {
            match self.requests.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return false,
            }
        }
        self.thread.unpark();
        done.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }
}

impl Drop for Flusher {
    /// Closes the channel and wakes the thread: it writes what is left and stops.
    fn drop(&mut self) {
        let (closed, _) = sync_channel(0);
        drop(std::mem::replace(&mut self.requests, closed));
        self.thread.unpark();
    }
}

/// The thread's end.
pub struct Requests(Receiver<Ack>);

impl Requests {
    /// Every request waiting, and whether the asking side is gone.
    pub fn take(&self) -> Taken {
        let mut acks = Vec::new();
        let closed = loop {
            match self.0.try_recv() {
                Ok(ack) => acks.push(ack),
                Err(TryRecvError::Empty) => break false,
                Err(TryRecvError::Disconnected) => break true,
            }
        };
        Taken { acks, closed }
    }
}

pub struct Taken {
    acks: Vec<Ack>,
    /// The asking side is gone: write what is left and stop.
    pub closed: bool,
}

impl Taken {
    /// Whether to write out now rather than wait for more.
    pub fn urgent(&self) -> bool {
        self.closed || !self.acks.is_empty()
    }

    /// Tells every asker its flush is done.
    pub fn answer(self) {
        for ack in self.acks {
            let _ = ack.send(());
        }
    }
}
