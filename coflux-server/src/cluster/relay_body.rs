//! The bodies of a forwarded request and of its answer, passed on chunk by chunk: nothing is
//! buffered here beyond the chunk in hand (the HTTP layers on either side hold a few more,
//! and stop reading when the other side does not take them).

use std::cell::{Cell, RefCell};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use futures::Stream;

/// Counts the bytes a forwarding node passed on, each way (a test hook: registered as app
/// data, it lets a test compare them with what the other end received).
#[derive(Default)]
pub struct Meter {
    /// Bytes of request bodies taken from clients.
    pub up: AtomicU64,
    /// Bytes of answers taken from owners.
    pub down: AtomicU64,
}

/// The client's request body, shared between the forwarder and the stream handed to the
/// HTTP client, so that a request never sent can still be served here.
pub(super) struct Upload {
    payload: RefCell<Option<Payload>>,
    /// Whether a chunk was handed on (the body can then not be served here any more).
    started: Cell<bool>,
    /// When the HTTP client last asked for a chunk (or the forwarding began).
    last_pull: Cell<Instant>,
    /// Whether the HTTP client waits for the client's next chunk (a slow client is no stall of
    /// the owner).
    awaiting_client: Cell<bool>,
    meter: Option<Arc<Meter>>,
}

impl Upload {
    pub(super) fn new(payload: Payload, meter: Option<Arc<Meter>>) -> Rc<Self> {
        Rc::new(Self {
            payload: RefCell::new(Some(payload)),
            started: Cell::new(false),
            last_pull: Cell::new(Instant::now()),
            awaiting_client: Cell::new(false),
            meter,
        })
    }

    /// The body, untouched, if no chunk was handed on.
    pub(super) fn take_back(&self) -> Option<Payload> {
        if self.started.get() {
            return None;
        }
        self.payload.borrow_mut().take()
    }

    /// Waits for `sending` while the owner makes progress: it fails (`None`) once the owner
    /// has neither asked for a chunk of the body nor answered for `idle` (a long upload is
    /// never cut while it moves, nor while the client is slow to send; the wait for the answer
    /// after the body is `idle` long).
    pub(super) async fn guard<F: Future>(&self, sending: F, idle: Duration) -> Option<F::Output> {
        let mut sending = std::pin::pin!(sending);
        loop {
            let deadline = self.last_pull.get() + idle;
            let sleep = std::pin::pin!(actix_rt::time::sleep_until(deadline.into()));
            match futures::future::select(sending.as_mut(), sleep).await {
                futures::future::Either::Left((out, _)) => return Some(out),
                futures::future::Either::Right(_) => {
                    if self.awaiting_client.get() {
                        // Waiting for the client counts as progress.
                        self.last_pull.set(Instant::now());
                    } else if self.last_pull.get() + idle <= Instant::now() {
                        return None;
                    }
                }
            }
        }
    }
}

/// The stream of the request body handed to the HTTP client.
pub(super) struct UploadStream(pub(super) Rc<Upload>);

impl Stream for UploadStream {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let upload = &self.0;
        upload.last_pull.set(Instant::now());
        let mut payload = upload.payload.borrow_mut();
        let Some(payload) = payload.as_mut() else {
            return Poll::Ready(None);
        };
        let next = Pin::new(payload).poll_next(cx);
        upload.awaiting_client.set(next.is_pending());
        if let Poll::Ready(Some(Ok(chunk))) = &next {
            upload.started.set(true);
            if let Some(meter) = &upload.meter {
                meter.up.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        }
        next
    }
}

/// The owner's answer body, failing when the owner sends nothing for `idle` while a chunk is
/// awaited (time the client takes to read is not counted).
pub(super) struct Download<S> {
    inner: S,
    idle: Duration,
    sleep: Option<Pin<Box<actix_rt::time::Sleep>>>,
    meter: Option<Arc<Meter>>,
}

impl<S> Download<S> {
    pub(super) fn new(inner: S, idle: Duration, meter: Option<Arc<Meter>>) -> Self {
        Self {
            inner,
            idle,
            sleep: None,
            meter,
        }
    }
}

impl<S> Stream for Download<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.sleep = None;
                if let Some(meter) = &this.meter {
                    meter.down.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(std::io::Error::other(error)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let idle = this.idle;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(actix_rt::time::sleep(idle)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the project's node stopped sending its answer",
                    )))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn cluster_forwarding_gives_up_on_an_owner_that_makes_no_progress() {
        let upload = Upload::new(Payload::None, None);
        let stalled = upload.guard(futures::future::pending::<()>(), Duration::from_millis(50));
        assert!(stalled.await.is_none());
        let answered = upload.guard(async { 7 }, Duration::from_millis(50));
        assert_eq!(answered.await, Some(7));

        let silent = futures::stream::pending::<Result<Bytes, PayloadError>>();
        let mut body = Download::new(silent, Duration::from_millis(50), None);
        let error = futures::StreamExt::next(&mut body)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    }

    #[actix_rt::test]
    async fn cluster_forwarding_waits_for_a_slow_client_without_giving_up() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Bytes, PayloadError>>();
        let payload: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(rx);
        let upload = Upload::new(Payload::from(payload), None);
        let mut stream = UploadStream(Rc::clone(&upload));
        // The HTTP client takes the body as the client sends it, one chunk 150 ms late.
        let sending = async move {
            let mut got = 0;
            while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
                got += chunk.unwrap().len();
            }
            got
        };
        let client = async move {
            tx.unbounded_send(Ok(Bytes::from_static(b"abc"))).unwrap();
            actix_rt::time::sleep(Duration::from_millis(150)).await;
            tx.unbounded_send(Ok(Bytes::from_static(b"de"))).unwrap();
            drop(tx);
        };
        let (sent, ()) = futures::join!(upload.guard(sending, Duration::from_millis(50)), client);
        assert_eq!(sent, Some(5));
        assert!(
            upload.take_back().is_none(),
            "a body handed on is not served again"
        );
    }
}
