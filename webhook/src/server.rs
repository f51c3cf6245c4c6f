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

/// Time allowed between accepting a connection and its first request head.
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Time allowed for a request head once the server waits for one. It is longer than the idle
/// timeout of the API server's HTTP client (Go's 90 s), so the webhook never closes a
/// keep-alive connection that the API server may be about to reuse: Go does not retry a POST
/// on a connection closed under it, and the admission call would fail.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(120);

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
    Ok(limited(axum_server::from_tcp(listener)?, handle))
}

/// `server` as both ports serve: HTTP/1.1 only, controlled by `handle`, and closing clients
/// that send no request or no complete request head in time.
fn limited<A>(
    server: axum_server::Server<SocketAddr, A>,
    handle: Handle<SocketAddr>,
) -> axum_server::Server<SocketAddr, A> {
    let mut server = server
        .handle(handle)
        .http1_only()
        .first_request_timeout(FIRST_REQUEST_TIMEOUT);
    server
        .http_builder()
        .http1()
        .header_read_timeout(HEADER_READ_TIMEOUT);
    server
}
