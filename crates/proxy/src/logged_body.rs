//! The response body the client receives: the real body, counting bytes, that writes the
//! request's access-log record when it is done (fully sent, or dropped by a client that left).

pub use crate::access_log::Pending;
use crate::conn_watch::Busy;
use crate::metrics::Sample;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use portico_plugins::{Body, Slot, body::BoxError};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

pub struct LoggedBody {
    inner: Body,
    bytes: u64,
    pending: Option<Box<Pending>>,
    /// The request's metrics, recorded when the body is done.
    sample: Option<Sample>,
    /// limit-conn places of the request, released when the body is done or dropped.
    slots: Vec<Arc<Slot>>,
    /// The connection counts a request in progress until the body is done.
    busy: Option<Busy>,
}

impl LoggedBody {
    pub fn new(inner: Body, pending: Option<Box<Pending>>, sample: Sample, busy: Busy) -> Self {
        Self {
            inner,
            bytes: 0,
            pending,
            sample: Some(sample),
            slots: Vec::new(),
            busy: Some(busy),
        }
    }

    /// A body with nothing to record, for tests of what carries it.
    #[cfg(test)]
    pub fn bare(inner: Body) -> Self {
        Self {
            inner,
            bytes: 0,
            pending: None,
            sample: None,
            slots: Vec::new(),
            busy: None,
        }
    }

    /// Keeps `slots` until the body ends.
    pub fn hold(&mut self, slots: Vec<Arc<Slot>>) {
        self.slots = slots;
    }
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.bytes += data.len() as u64;
            } else if let (Some(trailers), Some(p)) = (frame.trailers_ref(), this.pending.as_mut()) {
                // A gRPC call's outcome comes last, in the trailers.
                p.record.grpc_status = crate::grpc::status(trailers).or(p.record.grpc_status);
            }
        }
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.slots.clear();
            this.busy = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        let took = self.sample.take().map(|sample| sample.finish(self.bytes));
        // Every body that carries a record carries its sample too (only test bodies have neither).
        if let (Some(took), Some(mut p)) = (took, self.pending.take()) {
            p.record.bytes_sent = self.bytes;
            p.record.duration_ms = took.as_secs_f64() * 1000.0;
            p.send();
        }
    }
}
