//! Host port forwards: listeners on the host's 127.0.0.1 relaying TCP streams and UDP
//! datagrams to a target inside the instance (the VM namespace's uplink address, where the
//! VM firewall's DNAT sends them on to the jail).
//! The UDP relay itself is in `forward_udp.rs`.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use jrun_core::config::Proto;

use super::forward_udp::serve_udp;
use super::spec::ForwardSpec;

/// How often a blocked receive or accept wakes to look at the stop flag.
pub(super) const POLL: Duration = Duration::from_millis(200);

/// What one listener may hold at once: each UDP client costs a socket and a thread, each
/// TCP connection two threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// UDP clients with a relay socket; a new one beyond evicts the least recently heard.
    pub udp_clients: usize,
    /// A UDP client with no traffic for this long loses its relay socket.
    pub udp_idle: Duration,
    /// Concurrent TCP connections; more are refused (closed at once).
    pub tcp_connections: usize,
}

impl Limits {
    /// The limits of `spec`'s listener. The resolver's upstream relay (the one listener
    /// restricted to a source, see [`ForwardSpec::only_from`]) sees a new source port for
    /// nearly every query unbound sends: its clients are short-lived.
    pub fn for_spec(spec: &ForwardSpec) -> Self {
        Limits {
            udp_clients: 256,
            udp_idle: if spec.only_from.is_some() {
                Duration::from_secs(5)
            } else {
                Duration::from_secs(60)
            },
            tcp_connections: 512,
        }
    }
}

/// One running listener; dropping it stops it.
pub struct Forward {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Forward {
    /// Binds the listener now (so a busy port is reported at once) and serves it on a thread.
    pub fn start(spec: ForwardSpec) -> io::Result<Self> {
        Self::start_with(spec, Limits::for_spec(&spec))
    }

    fn start_with(spec: ForwardSpec, limits: Limits) -> io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = match spec.proto {
            Proto::Tcp => {
                let listener = TcpListener::bind(spec.listen)?;
                listener.set_nonblocking(true)?;
                thread::spawn(move || serve_tcp(listener, spec, limits, flag))
            }
            Proto::Udp => {
                let socket = UdpSocket::bind(spec.listen)?;
                socket.set_read_timeout(Some(POLL))?;
                thread::spawn(move || serve_udp(socket, spec, limits, flag))
            }
        };
        Ok(Forward {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Counts a live connection; dropping it (the relay ended) frees its place.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn serve_tcp(listener: TcpListener, spec: ForwardSpec, limits: Limits, stop: Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, peer)) => {
                if spec
                    .only_from
                    .is_some_and(|allowed| peer.ip() != std::net::IpAddr::V4(allowed))
                {
                    continue;
                }
                if active.load(Ordering::SeqCst) >= limits.tcp_connections {
                    tracing::warn!(listen = %spec.listen, %peer, "too many connections, refused");
                    continue;
                }
                active.fetch_add(1, Ordering::SeqCst);
                let slot = Slot(active.clone());
                thread::spawn(move || {
                    let _slot = slot;
                    if let Err(e) = relay_tcp(client, spec) {
                        tracing::debug!(listen = %spec.listen, error = %e, "tcp relay ended");
                    }
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(20))
            }
            Err(e) => {
                tracing::warn!(listen = %spec.listen, error = %e, "accept failed");
                thread::sleep(POLL);
            }
        }
    }
}

fn relay_tcp(client: TcpStream, spec: ForwardSpec) -> io::Result<()> {
    client.set_nonblocking(false)?;
    let upstream =
        TcpStream::connect_timeout(&SocketAddr::V4(spec.target), Duration::from_secs(5))?;
    let (c2, u2) = (client.try_clone()?, upstream.try_clone()?);
    let up = thread::spawn(move || pipe(c2, u2));
    pipe(upstream, client);
    let _ = up.join();
    Ok(())
}

/// Copies `from` to `to` until EOF, then half-closes `to` so the other side sees EOF too.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, SocketAddrV4};
    use std::time::Instant;

    fn local(port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)
    }

    fn v4(addr: SocketAddr) -> SocketAddrV4 {
        match addr {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => unreachable!("bound on 127.0.0.1"),
        }
    }

    /// An open (not source-restricted) forward.
    fn spec(proto: Proto, listen: SocketAddrV4, target: SocketAddrV4) -> ForwardSpec {
        ForwardSpec {
            proto,
            listen,
            target,
            only_from: None,
        }
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[test]
    fn tcp_streams_are_relayed_both_ways() {
        let target = TcpListener::bind("127.0.0.1:0").unwrap();
        let target_addr = v4(target.local_addr().unwrap());
        thread::spawn(move || {
            let (mut c, _) = target.accept().unwrap();
            let mut buf = [0u8; 5];
            c.read_exact(&mut buf).unwrap();
            c.write_all(&buf.to_ascii_uppercase()).unwrap();
        });
        let listen = local(free_port());
        let _fwd = Forward::start(spec(Proto::Tcp, listen, target_addr)).unwrap();
        let mut c = TcpStream::connect(listen).unwrap();
        c.write_all(b"hello").unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        assert_eq!(answer, "HELLO");
    }

    #[test]
    fn udp_replies_reach_the_client_and_strangers_are_ignored() {
        let target = UdpSocket::bind("127.0.0.1:0").unwrap();
        let target_addr = v4(target.local_addr().unwrap());
        thread::spawn(move || loop {
            let mut buf = [0u8; 64];
            let (n, from) = target.recv_from(&mut buf).unwrap();
            target
                .send_to(&buf[..n].to_ascii_uppercase(), from)
                .unwrap();
        });
        let open = local(free_port());
        let _open = Forward::start(spec(Proto::Udp, open, target_addr)).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        client.send_to(b"ping", open).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"PING");
        assert_eq!(from, SocketAddr::V4(open));

        // A relay that serves one other address drops this client's datagrams.
        let closed = local(free_port());
        let _closed = Forward::start(ForwardSpec {
            proto: Proto::Udp,
            listen: closed,
            target: target_addr,
            only_from: Some(Ipv4Addr::new(10, 17, 88, 2)),
        })
        .unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        client.send_to(b"ping", closed).unwrap();
        assert!(client.recv_from(&mut buf).is_err());
    }

    /// A UDP target that answers each datagram with the source port it came from.
    fn port_echo() -> SocketAddrV4 {
        let target = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = v4(target.local_addr().unwrap());
        thread::spawn(move || loop {
            let mut buf = [0u8; 64];
            let (_, from) = target.recv_from(&mut buf).unwrap();
            let _ = target.send_to(from.port().to_string().as_bytes(), from);
        });
        addr
    }

    fn limits(udp_clients: usize, udp_idle: Duration, tcp_connections: usize) -> Limits {
        Limits {
            udp_clients,
            udp_idle,
            tcp_connections,
        }
    }

    /// The relay source port the target saw for one datagram from `client`.
    fn relay_port(client: &UdpSocket, listen: SocketAddrV4) -> String {
        client.send_to(b"x", listen).unwrap();
        let mut buf = [0u8; 64];
        // Only the forward's answer counts: tests running beside this one may send a stray
        // datagram to a port this client got after they had probed it free.
        loop {
            let (n, from) = client.recv_from(&mut buf).unwrap();
            if from == std::net::SocketAddr::V4(listen) {
                return String::from_utf8_lossy(&buf[..n]).into_owned();
            }
        }
    }

    fn udp_client() -> UdpSocket {
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        c
    }

    #[test]
    fn udp_clients_beyond_the_cap_evict_the_least_recently_heard() {
        let listen = local(free_port());
        let spec = spec(Proto::Udp, listen, port_echo());
        let _fwd = Forward::start_with(spec, limits(2, Duration::from_secs(60), 8)).unwrap();
        let (a, b, c) = (udp_client(), udp_client(), udp_client());
        let a1 = relay_port(&a, listen);
        let b1 = relay_port(&b, listen);
        // Within the cap, each client keeps its relay socket.
        assert_eq!(relay_port(&a, listen), a1);
        // A third client evicts b (a was heard since), whose next datagram gets a new one.
        relay_port(&c, listen);
        assert_eq!(relay_port(&a, listen), a1);
        assert_ne!(relay_port(&b, listen), b1);
    }

    #[test]
    fn an_idle_udp_client_loses_its_relay_socket() {
        let listen = local(free_port());
        let spec = spec(Proto::Udp, listen, port_echo());
        let _fwd = Forward::start_with(spec, limits(8, Duration::from_millis(300), 8)).unwrap();
        let a = udp_client();
        let first = relay_port(&a, listen);
        assert_eq!(relay_port(&a, listen), first);
        thread::sleep(Duration::from_millis(1000));
        assert_ne!(relay_port(&a, listen), first);
    }

    #[test]
    fn the_resolver_relay_forgets_its_clients_sooner() {
        let mut spec = spec(Proto::Udp, local(53), local(53));
        let open = Limits::for_spec(&spec);
        spec.only_from = Some(Ipv4Addr::new(10, 17, 88, 2));
        let dns = Limits::for_spec(&spec);
        assert!(dns.udp_idle < open.udp_idle);
        assert_eq!(dns.udp_idle, Duration::from_secs(5));
        assert_eq!((open.udp_clients, open.tcp_connections), (256, 512));
    }

    #[test]
    fn tcp_connections_beyond_the_cap_are_refused_until_one_ends() {
        let target = TcpListener::bind("127.0.0.1:0").unwrap();
        let target_addr = v4(target.local_addr().unwrap());
        // Greets every connection and holds it open until the client leaves.
        thread::spawn(move || {
            for c in target.incoming() {
                let mut c = c.unwrap();
                thread::spawn(move || {
                    let _ = c.write_all(b"hi");
                    let _ = io::copy(&mut c.try_clone().unwrap(), &mut io::sink());
                });
            }
        });
        let listen = local(free_port());
        let spec = spec(Proto::Tcp, listen, target_addr);
        let _fwd = Forward::start_with(spec, limits(8, Duration::from_secs(60), 2)).unwrap();
        let greeted = |c: &mut TcpStream| {
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 2];
            c.read_exact(&mut buf).is_ok()
        };
        let mut one = TcpStream::connect(listen).unwrap();
        let mut two = TcpStream::connect(listen).unwrap();
        assert!(greeted(&mut one) && greeted(&mut two));
        let mut three = TcpStream::connect(listen).unwrap();
        assert!(!greeted(&mut three), "a third connection is closed at once");
        drop(one);
        // The freed place is taken again (the relay notices the close shortly).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut again = TcpStream::connect(listen).unwrap();
            if greeted(&mut again) {
                break;
            }
            assert!(Instant::now() < deadline, "the place was never freed");
            thread::sleep(Duration::from_millis(50));
        }
        drop(two);
    }

    #[test]
    fn a_busy_port_fails_at_start() {
        let squatter = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = squatter.local_addr().unwrap().port();
        let spec = spec(Proto::Tcp, local(port), local(9));
        assert!(Forward::start(spec).is_err());
    }
}
