//! Where sidekiq-guard's servers listen: on every address of the pod, IPv4 and IPv6 alike.
//!
//! The kubelet sends probes and `httpGet` preStop hooks to the pod's primary IP, and the API
//! server calls the webhook at an address of its Service: in an IPv6-only cluster (EKS in IPv6
//! mode, say) or a dual-stack one whose primary family is IPv6, those are IPv6 addresses, which
//! a socket bound to `0.0.0.0` refuses — the probes fail, liveness restarts Sidekiq over and
//! over, and every call to the webhook fails. So the injected sidecar and the manifests listen
//! on `[::]` ([`every_address`]), bound for both families (`bind`). A node whose kernel has no
//! IPv6 at all (`ipv6.disable=1`) refuses the IPv6 socket itself; the shells then listen on
//! `0.0.0.0` instead, which is all such a node can be reached at. Interfaces with IPv6 merely
//! switched off (`disable_ipv6`) still bind `[::]` and answer IPv4 through it.
//!
//! The defaults of `--listen`, `--addr` and `--health-addr` stay `0.0.0.0:PORT`, as the
//! contract fixes them; only what sidekiq-guard writes into pods and manifests says `[::]`.
//! Binding is the one piece of I/O here, behind the `listen` feature, so that the probe and the
//! webhook bind alike.

#[cfg(feature = "listen")]
use std::io;
#[cfg(feature = "listen")]
use std::net::Ipv4Addr;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Linux's `EAFNOSUPPORT`: the kernel was built or booted without IPv6. `std` reports it as an
/// uncategorised error, so it is told by number: 97 on x86-64 and arm64, the architectures the
/// image is built for (MIPS, SPARC and Alpha number it otherwise).
#[cfg(feature = "listen")]
const EAFNOSUPPORT: i32 = 97;

/// Every address of the pod, both families, on `port`: what injected sidecars and the manifests
/// listen on.
pub fn every_address(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)
}

/// The address to listen on instead of `addr`, when binding `addr` failed with `err` because
/// the node has no IPv6: `0.0.0.0` on the same port, for the IPv6 wildcard only. `None` for any
/// other address or error, which is the caller's to report (a port in use stays an error).
/// Interfaces with IPv6 switched off (`disable_ipv6`) still bind the wildcard: only a kernel
/// without IPv6 refuses it, and it refuses the socket itself.
#[cfg(feature = "listen")]
fn ipv4_instead(addr: SocketAddr, err: &io::Error) -> Option<SocketAddr> {
    (err.raw_os_error() == Some(EAFNOSUPPORT) && addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED))
        .then(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), addr.port()))
}

/// What a shell logs (as a warning, with the address asked for) when [`bind`] fell back to
/// IPv4: one wording for the probe and the webhook, which operators search their logs for.
#[cfg(feature = "listen")]
pub const IPV4_ONLY: &str = "no IPv6 on this node; listening on IPv4 only";

/// A listening socket, non-blocking, ready for an async runtime.
#[cfg(feature = "listen")]
#[derive(Debug)]
pub struct Listening {
    /// The socket.
    pub listener: std::net::TcpListener,
    /// It listens on IPv4 alone, at `0.0.0.0`, because the node has no IPv6 for the `[::]`
    /// asked for: the shell says so in its log ([`IPV4_ONLY`]).
    pub ipv4_only: bool,
}

/// Listens on `addr`. `[::]` answers IPv4 too (`IPV6_V6ONLY` off, whatever the
/// `net.ipv6.bindv6only` of the network namespace, which is the node's under `hostNetwork`), and
/// becomes `0.0.0.0` on a node without IPv6.
#[cfg(feature = "listen")]
pub fn bind(addr: SocketAddr) -> io::Result<Listening> {
    match listen_on(addr) {
        Ok(listener) => Ok(Listening {
            listener,
            ipv4_only: false,
        }),
        Err(err) => {
            let ipv4 = ipv4_instead(addr, &err).ok_or(err)?;
            let listener = listen_on(ipv4)
                .map_err(|source| io::Error::new(source.kind(), NoIpv6 { ipv4, source }))?;
            Ok(Listening {
                listener,
                ipv4_only: true,
            })
        }
    }
}

/// The IPv4 address a node without IPv6 could not listen on either.
#[cfg(feature = "listen")]
#[derive(Debug, thiserror::Error)]
#[error("no IPv6 on this node, and cannot listen on {ipv4} instead")]
struct NoIpv6 {
    ipv4: SocketAddr,
    #[source]
    source: io::Error,
}

#[cfg(feature = "listen")]
fn listen_on(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};

    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    // As std's `TcpListener::bind`: a restarted server binds its port again at once, past
    // connections of its previous life in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    // As std's and tokio's `TcpListener::bind`.
    socket.listen(128)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Whether a probe given `--listen=have` answers the kubelet where one given `--listen=want`
/// does, in a pod whose primary IP is known to be IPv4 (`ipv4_pod`) or not. Pods injected
/// before sidecars listened on `[::]` carry `0.0.0.0:PORT`, which answers alike only there: in
/// a template, or a pod of an IPv6-first cluster, it is the difference that fails the probes.
pub fn answers_alike(have: &str, want: &str, ipv4_pod: bool) -> bool {
    if have == want {
        return true;
    }
    match (have.parse::<SocketAddr>(), want.parse::<SocketAddr>()) {
        (Ok(have), Ok(want)) => {
            have == want
                || (ipv4_pod
                    && have.port() == want.port()
                    && have.ip().is_unspecified()
                    && want.ip().is_unspecified())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "listen")]
    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_address_is_the_ipv6_wildcard() {
        assert_eq!(every_address(7434).to_string(), "[::]:7434");
    }

    #[cfg(feature = "listen")]
    #[test]
    fn a_node_without_ipv6_listens_on_ipv4_instead() {
        let no_ipv6 = io::Error::from_raw_os_error(EAFNOSUPPORT);
        assert_eq!(
            ipv4_instead(addr("[::]:7434"), &no_ipv6),
            Some(addr("0.0.0.0:7434"))
        );
        // A port in use, an address missing from the interfaces, or an address the user chose
        // stays the error it is.
        let in_use = io::Error::from(io::ErrorKind::AddrInUse);
        let not_available = io::Error::from(io::ErrorKind::AddrNotAvailable);
        assert_eq!(ipv4_instead(addr("[::]:7434"), &in_use), None);
        assert_eq!(ipv4_instead(addr("[::]:7434"), &not_available), None);
        assert_eq!(ipv4_instead(addr("[::1]:7434"), &no_ipv6), None);
        assert_eq!(ipv4_instead(addr("0.0.0.0:7434"), &no_ipv6), None);
    }

    /// `[::]` answers both families (where this machine's loopback has IPv6), and a port in use
    /// stays an error.
    #[cfg(feature = "listen")]
    #[test]
    fn every_address_listens_for_both_families() {
        if std::net::TcpListener::bind("[::]:0").is_err() {
            eprintln!("no IPv6 in this kernel: the probe's and the webhook's tests cover it");
            return;
        }
        let listening = bind(every_address(0)).unwrap();
        assert!(!listening.ipv4_only);
        let port = listening.listener.local_addr().unwrap().port();
        std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        if std::net::TcpListener::bind("[::1]:0").is_ok() {
            std::net::TcpStream::connect(("::1", port)).unwrap();
        }
        let in_use = bind(every_address(port)).unwrap_err();
        assert_eq!(in_use.kind(), io::ErrorKind::AddrInUse, "{in_use}");
    }

    #[test]
    fn wildcards_on_the_same_port_answer_alike_in_an_ipv4_pod_only() {
        assert!(answers_alike("0.0.0.0:7434", "[::]:7434", true));
        assert!(!answers_alike("0.0.0.0:7434", "[::]:7434", false));
        assert!(answers_alike("[::]:7434", "[::]:7434", false));
        assert!(answers_alike("[0::0]:7434", "[::]:7434", false));
        assert!(answers_alike("127.0.0.1:7434", "127.0.0.1:7434", false));
        assert!(!answers_alike("0.0.0.0:9999", "[::]:7434", true));
        assert!(!answers_alike("127.0.0.1:7434", "[::]:7434", true));
        assert!(!answers_alike("localhost:7434", "[::]:7434", true));
        assert!(answers_alike("localhost:7434", "localhost:7434", false));
    }
}
