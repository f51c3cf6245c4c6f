//! The HTTPS server of the admission port, built one way for the webhook and for the benchmark's
//! floor server, so that the two differ only in their handlers; and the plain server of the
//! health port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use rustls::ServerConfig;

/// Time allowed for a TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Time allowed for a request head once the server waits for one. It is longer than the idle
/// timeout of the API server's HTTP client (Go's 90 s), so the webhook never closes a
/// keep-alive connection that the API server may be about to reuse: Go does not retry a POST
/// on a connection closed under it, and the admission call would fail.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// Time allowed on the admission port between a completed TLS handshake and the first request
/// head: as long as between two requests. Go's HTTP client keeps a connection it dialed for a
/// request that another connection served, unused, in its idle pool for up to 90 s; closed
/// under it sooner, the POST that picks it up could fail like one on a reused connection.
/// (The handshake before it has its own [`HANDSHAKE_TIMEOUT`].)
pub const FIRST_REQUEST_TIMEOUT: Duration = HEADER_READ_TIMEOUT;

/// Time allowed on the health port between accepting a connection and its first request: the
/// kubelet's probes and Prometheus send theirs at once.
pub const HEALTH_FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTPS/1.1 server on `listener` with `tls`, controlled by `handle`.
pub fn https(
    listener: std::net::TcpListener,
    tls: Arc<ServerConfig>,
    handle: Handle<SocketAddr>,
) -> std::io::Result<axum_server::Server<SocketAddr, RustlsAcceptor>> {
    listener.set_nonblocking(true)?;
    let acceptor =
        RustlsAcceptor::new(RustlsConfig::from_config(tls)).handshake_timeout(HANDSHAKE_TIMEOUT);
    Ok(limited(
        axum_server::from_tcp(listener)?.acceptor(acceptor),
        handle,
        FIRST_REQUEST_TIMEOUT,
    ))
}

/// A plain HTTP/1.1 server on `listener` (the health port), with the same limits on slow or
/// silent clients as the admission port: the kubelet's probes and Prometheus reach it, and a
/// client that holds connections open without sending must not exhaust the process's files.
pub fn http(
    listener: std::net::TcpListener,
    handle: Handle<SocketAddr>,
) -> std::io::Result<axum_server::Server<SocketAddr>> {
    listener.set_nonblocking(true)?;
    Ok(limited(
        axum_server::from_tcp(listener)?,
        handle,
        HEALTH_FIRST_REQUEST_TIMEOUT,
    ))
}

/// `server` as both ports serve: HTTP/1.1 only, controlled by `handle`, and closing clients
/// that send no request within `first_request` or no complete request head in time.
fn limited<A>(
    server: axum_server::Server<SocketAddr, A>,
    handle: Handle<SocketAddr>,
    first_request: Duration,
) -> axum_server::Server<SocketAddr, A> {
    let mut server = server
        .handle(handle)
        .http1_only()
        .first_request_timeout(first_request);
    server
        .http_builder()
        .http1()
        .header_read_timeout(HEADER_READ_TIMEOUT);
    server
}
