//! The HTTP listener, driven by hand instead of `axum::serve` for three things that one cannot do:
//! a deadline for a request's headers (a client that trickles them in, slowloris, would otherwise hold its
//! connection and task for ever), optional TLS, and the client's address in every request (for the
//! per-address login limits: [`ClientAddr`]).

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::rustls;
use tower::ServiceExt;

/// How connections are served.
#[derive(Clone)]
pub struct HttpOptions {
    /// A connection that has not sent a whole request head (or TLS handshake) within this is closed.
    pub header_read_timeout: Duration,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// After shutdown begins, open connections get this long to finish (live streams never do).
    pub drain: Duration,
}

/// The address of the client that sent a request (unspecified when the router runs without this
/// listener, as in tests that call it directly).
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ))
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open connections finish for
/// `opts.drain` at most.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    opts: HttpOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a sender; when all are gone, every connection has ended.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let tls = opts.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let conn = Connection {
            app: app.clone(),
            peer,
            header_read_timeout: opts.header_read_timeout,
            stop: stop_rx.clone(),
            _alive: alive_tx.clone(),
        };
        tokio::spawn(conn.run(tcp, tls.clone()));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_tx);
    if tokio::time::timeout(opts.drain, alive_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!(
            drain_s = opts.drain.as_secs(),
            "HTTP connections still open at shutdown were dropped"
        );
    }
    Ok(())
}

/// Until shutdown begins (or the server is gone).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

struct Connection {
    app: Router,
    peer: SocketAddr,
    header_read_timeout: Duration,
    stop: watch::Receiver<bool>,
    _alive: mpsc::Sender<()>,
}

impl Connection {
    async fn run(self, tcp: TcpStream, tls: Option<tokio_rustls::TlsAcceptor>) {
        let Some(acceptor) = tls else {
            return self.serve(tcp).await;
        };
        // The handshake gets the same deadline as a request head: a silent client is cut off either way.
        match tokio::time::timeout(self.header_read_timeout, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => self.serve(stream).await,
            Ok(Err(e)) => tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(peer = %self.peer, "TLS handshake timed out"),
        }
    }

    async fn serve<I>(mut self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (app, peer) = (self.app.clone(), self.peer);
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                app.clone().oneshot(req.map(axum::body::Body::new))
            });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let result = tokio::select! {
            r = conn.as_mut() => r,
            _ = stopping(&mut self.stop) => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(peer = %self.peer, error = %e, "HTTP connection ended with an error");
        }
    }
}
