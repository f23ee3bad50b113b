//! The accept loop of both listeners, with the limits that keep a stranger from
//! exhausting the daemon: a cap on concurrent connections per listener (each listener
//! has its own budget, so a flood on the TCP port never locks the CLI out of the unix
//! socket), and a header-read timeout that also bounds idle keep-alive connections.
//!
//! `axum::serve` has no knob for either, so connections are served with hyper's own
//! HTTP/1 builder (`header_read_timeout`) and a semaphore; everything else is axum.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::Hub;

/// The limits of one listener. The header-read timeout (`[limits]
/// header_read_timeout_ms`: how long a connection may take to send a request's
/// headers; hyper starts this clock whenever it waits for a request, so it also reaps
/// idle keep-alive connections) is read from the config in force at each accept.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Concurrent connections, upgraded WebSockets included; fixed while the listener
    /// runs (a config reload reports a change as needing a restart).
    pub max: usize,
}

/// A connection's stream, holding one of its listener's permits for as long as it
/// lives, including after a WebSocket upgrade took it over. A write that makes no
/// progress for `write_timeout` fails with `TimedOut`, which ends the connection: hyper
/// has no write timeout, and without one a peer that stops reading would hold its
/// response, event stream or WebSocket (and their buffers) for ever.
struct Counted<S> {
    io: S,
    _permit: OwnedSemaphorePermit,
    write_timeout: Duration,
    /// Running while a write is pending; reset by any progress.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Counted<S> {
    /// Tracks a write's result: progress resets the stall clock; a pending write past
    /// the timeout becomes an error.
    fn track<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.stall = None;
            return r;
        }
        let timeout = self.write_timeout;
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer read nothing for [limits] write_timeout_ms",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.track(cx, r)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.track(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Logs "limit reached" at most once per this interval, so a flood cannot flood the log.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `stop` fires, closes the listener (and says so
/// on `closed`, so a restart can hand the port to the next daemon while the exchanges
/// in flight, its own answer among them, finish), then waits for the HTTP exchanges in
/// flight to finish (upgraded WebSockets end on their own, on the same token).
pub async fn serve<L>(
    mut listener: L,
    router: Router,
    limits: ConnLimits,
    stop: CancellationToken,
    hub: Hub,
    name: &'static str,
    closed: tokio::sync::oneshot::Sender<()>,
) where
    L: axum::serve::Listener,
    L::Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max));
    let started = Instant::now();
    let last_warn = AtomicU64::new(0);
    // Every connection task holds a clone of `done_tx`; when all are gone, `recv`
    // answers `None` and the drain is over.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    loop {
        let (io, _addr) = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            conn = listener.accept() => conn,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Over the cap: close at once, so the flood holds no descriptor and no task.
            drop(io);
            hub.metrics().reject_connection(name, "limit");
            let now = started.elapsed().as_secs();
            let last = last_warn.load(Ordering::Relaxed);
            if now >= last + WARN_EVERY.as_secs() || last == 0 {
                last_warn.store(now.max(1), Ordering::Relaxed);
                tracing::warn!(
                    listener = name,
                    max = limits.max,
                    "connection limit reached; closing new connections until some end ([limits] max_connections_{name})"
                );
            }
            continue;
        };
        // Read per connection, so a config reload applies to the connections after it.
        let header_read_timeout = Duration::from_millis(hub.config().limits.header_read_timeout_ms);
        let io = TokioIo::new(Counted {
            io,
            _permit: permit,
            write_timeout: Duration::from_millis(hub.config().limits.write_timeout_ms),
            stall: None,
        });
        let service = TowerToHyperService::new(router.clone());
        let stop = stop.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout);
            let conn = builder.serve_connection(io, service).with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(listener = name, "connection ended: {e}");
                    }
                }
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(done);
        });
    }
    drop(listener);
    let _ = closed.send(());
    drop(done_tx);
    let _ = done_rx.recv().await;
}
