//! The body type of every request and response that crosses the gateway.
//!
//! An enum rather than a boxed trait object: the common cases (an upstream's streaming body,
//! a small body the gateway wrote itself) cost no allocation.

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request or response body.
#[derive(Default)]
pub enum Body {
    /// No bytes at all.
    #[default]
    Empty,
    /// One chunk the gateway produced (error JSON, a mock answer). `None` once sent.
    Full(Option<Bytes>),
    /// A streaming body from a client or an upstream, passed through untouched.
    Incoming(hyper::body::Incoming),
    /// A client's body of unknown length that may not exceed a limit (request-size-limit).
    Limited(Box<Limited>),
    /// Any other streaming body (an upstream response read by the proxy's own HTTP/1 client).
    Boxed(Pin<Box<dyn http_body::Body<Data = Bytes, Error = BoxError> + Send>>),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Empty => f.write_str("Body::Empty"),
            Body::Full(b) => f.debug_tuple("Body::Full").field(b).finish(),
            Body::Incoming(b) => f.debug_tuple("Body::Incoming").field(b).finish(),
            Body::Limited(l) => f.debug_tuple("Body::Limited").field(l).finish(),
            Body::Boxed(_) => f.write_str("Body::Boxed(..)"),
        }
    }
}

/// A streaming body that fails the read crossing its limit, so nothing past it is forwarded.
#[derive(Debug)]
pub struct Limited {
    inner: hyper::body::Incoming,
    remaining: u64,
    exceeded: Arc<AtomicBool>,
}

/// Tells, after the fact, whether a [`Body::limited`] body went over its limit.
#[derive(Debug, Clone)]
pub struct LimitFlag(Arc<AtomicBool>);

impl LimitFlag {
    pub fn exceeded(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The error a [`Limited`] body fails with.
#[derive(Debug)]
pub struct TooLarge;

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body over its size limit")
    }
}

impl std::error::Error for TooLarge {}

impl Body {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let b = bytes.into();
        if b.is_empty() { Body::Empty } else { Body::Full(Some(b)) }
    }
}

impl Body {
    /// `inner`, failing once more than `max` bytes have been read; the flag tells the proxy why
    /// the upstream call failed.
    pub fn limited(inner: hyper::body::Incoming, max: u64) -> (Self, LimitFlag) {
        let exceeded = Arc::new(AtomicBool::new(false));
        let flag = LimitFlag(exceeded.clone());
        let body = Body::Limited(Box::new(Limited {
            inner,
            remaining: max,
            exceeded,
        }));
        (body, flag)
    }
}

impl From<hyper::body::Incoming> for Body {
    fn from(b: hyper::body::Incoming) -> Self {
        Body::Incoming(b)
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Incoming(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Body::Boxed(b) => b.as_mut().poll_frame(cx),
            Body::Limited(l) => {
                let polled = Pin::new(&mut l.inner).poll_frame(cx).map_err(Into::into);
                if let Poll::Ready(Some(Ok(frame))) = &polled
                    && let Some(data) = frame.data_ref()
                {
                    let n = data.len() as u64;
                    if n > l.remaining {
                        l.remaining = 0;
                        l.exceeded.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(TooLarge))));
                    }
                    l.remaining -= n;
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Full(b) => b.is_none(),
            Body::Incoming(b) => b.is_end_stream(),
            Body::Boxed(b) => b.is_end_stream(),
            Body::Limited(l) => l.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty => SizeHint::with_exact(0),
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Incoming(b) => b.size_hint(),
            Body::Boxed(b) => b.size_hint(),
            Body::Limited(l) => l.inner.size_hint(),
        }
    }
}
