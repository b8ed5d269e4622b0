//! Host port forwards: listeners on the host's 127.0.0.1 relaying TCP streams and UDP
//! datagrams to a target inside the instance (the VM namespace's uplink address, where the
//! VM firewall's DNAT sends them on to the jail).
//! The UDP relay itself is in `forward_udp.rs`.
//!
//! A TCP forward:
//! - listens with a backlog of [`LISTEN_BACKLOG`] (SOMAXCONN; the kernel caps it at
//!   `net.core.somaxconn`, 4096 by default since Linux 5.4), not std's 128, so a burst of
//!   clients is queued rather than dropped into a 1 s SYN retransmit;
//! - waits for clients with `poll(2)` (woken the moment one arrives; every [`POLL`] to look
//!   at its stop flag) and accepts all that are queued;
//! - relays each connection on two threads (one per direction, [`RELAY_STACK`] of stack
//!   each) and closes it after [`Limits::tcp_idle`] (10 minutes) with no byte either way, so
//!   idle clients cannot hold the forward's places for ever;
//! - holds at most [`Limits::tcp_connections`] (4096) connections at once: beyond, a new one
//!   is closed at once. Each costs two threads and two descriptors; the supervisor raises its
//!   open-file limit to the hard limit for them (see `mod.rs`);
//! - reports refusals (cap reached, no thread or descriptor left) as one warning per
//!   [`WARN_EVERY`] at most, with how many there were since the last one.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use jrun_core::config::Proto;

use super::forward_udp::serve_udp;
use super::spec::ForwardSpec;

/// How often a blocked receive or accept wakes to look at the stop flag.
pub(super) const POLL: Duration = Duration::from_millis(200);

/// The TCP listen queue: SOMAXCONN (capped by the kernel at `net.core.somaxconn`).
const LISTEN_BACKLOG: i32 = 4096;

/// Stack of each relay thread: it copies through a heap buffer and calls little else.
const RELAY_STACK: usize = 128 * 1024;

/// At most one warning about refused connections per this long (with their count).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// What one listener may hold at once: each UDP client costs a socket and a thread, each
/// TCP connection two threads and two descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// UDP clients with a relay socket; a new one beyond evicts the least recently heard.
    pub udp_clients: usize,
    /// A UDP client with no traffic for this long loses its relay socket.
    pub udp_idle: Duration,
    /// Concurrent TCP connections; more are refused (closed at once).
    pub tcp_connections: usize,
    /// A TCP connection with no byte either way for this long is closed.
    pub tcp_idle: Duration,
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
            tcp_connections: 4096,
            tcp_idle: Duration::from_secs(10 * 60),
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
                let listener = tcp_listener(SocketAddr::V4(spec.listen))?;
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

/// A non-blocking listener on `addr` with a [`LISTEN_BACKLOG`] queue (`SO_REUSEADDR`, as
/// std's `TcpListener::bind` sets).
fn tcp_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Counts a live connection; dropping it (the relay ended) frees its place.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Refused connections, told at most once per [`WARN_EVERY`] with their count.
struct Refusals {
    listen: std::net::SocketAddrV4,
    cap: usize,
    count: u64,
    last_warned: Option<Instant>,
}

impl Refusals {
    fn new(listen: std::net::SocketAddrV4, cap: usize) -> Self {
        Refusals {
            listen,
            cap,
            count: 0,
            last_warned: None,
        }
    }

    fn refused(&mut self) {
        self.count += 1;
        self.flush();
    }

    /// Warns about the refusals counted so far when the last warning is old enough.
    fn flush(&mut self) {
        if self.count == 0 || self.last_warned.is_some_and(|t| t.elapsed() < WARN_EVERY) {
            return;
        }
        tracing::warn!(
            listen = %self.listen,
            refused = self.count,
            "tcp forward refused {} connection(s) (at most {} at once, or no thread or descriptor left); next report in {} s at the earliest",
            self.count,
            self.cap,
            WARN_EVERY.as_secs()
        );
        self.count = 0;
        self.last_warned = Some(Instant::now());
    }
}

fn serve_tcp(listener: TcpListener, spec: ForwardSpec, limits: Limits, stop: Arc<AtomicBool>) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let active = Arc::new(AtomicUsize::new(0));
    let mut refusals = Refusals::new(spec.listen, limits.tcp_connections);
    let timeout = PollTimeout::try_from(POLL).unwrap_or(PollTimeout::MAX);
    while !stop.load(Ordering::SeqCst) {
        refusals.flush();
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                tracing::warn!(listen = %spec.listen, error = %e, "poll failed");
                thread::sleep(POLL);
                continue;
            }
        }
        // Every client queued now.
        loop {
            match listener.accept() {
                Ok((client, peer)) => {
                    if spec
                        .only_from
                        .is_some_and(|allowed| peer.ip() != std::net::IpAddr::V4(allowed))
                    {
                        continue;
                    }
                    if active.load(Ordering::SeqCst) >= limits.tcp_connections {
                        refusals.refused();
                        continue;
                    }
                    active.fetch_add(1, Ordering::SeqCst);
                    let slot = Slot(active.clone());
                    let idle = limits.tcp_idle;
                    let spawned = thread::Builder::new()
                        .name("fwd-tcp".into())
                        .stack_size(RELAY_STACK)
                        .spawn(move || {
                            let _slot = slot;
                            if let Err(e) = relay_tcp(client, spec, idle) {
                                tracing::debug!(listen = %spec.listen, error = %e, "tcp relay ended");
                            }
                        });
                    // The closure (client and slot) is dropped: the connection is closed.
                    if spawned.is_err() {
                        refusals.refused();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of descriptors (EMFILE/ENFILE) or memory: the client stays queued
                    // and poll would wake at once, so wait a little for relays to end.
                    use nix::libc::{EMFILE, ENFILE, ENOBUFS, ENOMEM};
                    if matches!(e.raw_os_error(), Some(n) if [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(&n))
                    {
                        refusals.refused();
                    } else {
                        tracing::warn!(listen = %spec.listen, error = %e, "accept failed");
                    }
                    thread::sleep(Duration::from_millis(50));
                    break;
                }
            }
        }
    }
}

/// Milliseconds since `epoch`, for the relay's last-activity clock.
fn since(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis() as u64
}

/// Relays `client` to the forward's target both ways until both directions end, or no byte
/// went either way for `idle`.
fn relay_tcp(client: TcpStream, spec: ForwardSpec, idle: Duration) -> io::Result<()> {
    client.set_nonblocking(false)?;
    let upstream =
        TcpStream::connect_timeout(&SocketAddr::V4(spec.target), Duration::from_secs(5))?;
    // A blocked read wakes this often to check the idle clock; a write blocked for `idle`
    // (the other side reads nothing) fails.
    let tick = (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(30));
    for s in [&client, &upstream] {
        s.set_read_timeout(Some(tick))?;
        s.set_write_timeout(Some(idle))?;
    }
    let epoch = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let (client, upstream) = (Arc::new(client), Arc::new(upstream));
    let back = {
        let (from, to, last) = (upstream.clone(), client.clone(), last.clone());
        thread::Builder::new()
            .name("fwd-tcp-back".into())
            .stack_size(RELAY_STACK)
            .spawn(move || pipe(&from, &to, &[&from, &to], &last, epoch, idle))?
    };
    pipe(
        &client,
        &upstream,
        &[&client, &upstream],
        &last,
        epoch,
        idle,
    );
    let _ = back.join();
    Ok(())
}

/// Copies `from` to `to` until EOF, then half-closes `to` so the other side sees EOF too.
/// With no byte either way for `idle` (`last` is shared by both directions), it shuts
/// both streams (`both`) down, which ends the other direction too.
fn pipe(
    from: &TcpStream,
    to: &TcpStream,
    both: &[&TcpStream; 2],
    last: &AtomicU64,
    epoch: Instant,
    idle: Duration,
) {
    let mut buf = vec![0u8; 8 * 1024];
    let (mut reader, mut writer) = (from, to);
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                last.store(since(epoch), Ordering::Relaxed);
                if writer.write_all(&buf[..n]).is_err() {
                    break;
                }
                last.store(since(epoch), Ordering::Relaxed);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                let quiet = since(epoch).saturating_sub(last.load(Ordering::Relaxed));
                if Duration::from_millis(quiet) >= idle {
                    for s in both {
                        let _ = s.shutdown(Shutdown::Both);
                    }
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
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
            tcp_idle: Duration::from_secs(600),
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
        assert_eq!((open.udp_clients, open.tcp_connections), (256, 4096));
        assert_eq!(open.tcp_idle, Duration::from_secs(600));
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
    fn an_idle_tcp_connection_is_closed_a_busy_one_is_not() {
        let target = TcpListener::bind("127.0.0.1:0").unwrap();
        let target_addr = v4(target.local_addr().unwrap());
        // Echoes whatever comes, for as long as the client stays.
        thread::spawn(move || {
            for c in target.incoming() {
                let c = c.unwrap();
                thread::spawn(move || {
                    let _ = io::copy(&mut &c, &mut &c);
                });
            }
        });
        let listen = local(free_port());
        let mut l = limits(8, Duration::from_secs(60), 8);
        l.tcp_idle = Duration::from_millis(600);
        let _fwd = Forward::start_with(spec(Proto::Tcp, listen, target_addr), l).unwrap();
        let echo = |c: &mut TcpStream| {
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 1];
            c.write_all(b"x").is_ok() && c.read_exact(&mut buf).is_ok()
        };
        let mut busy = TcpStream::connect(listen).unwrap();
        let mut idle = TcpStream::connect(listen).unwrap();
        assert!(echo(&mut busy) && echo(&mut idle));
        // busy talks every 200 ms, for 3 s: it outlives many idle timeouts.
        for _ in 0..15 {
            thread::sleep(Duration::from_millis(200));
            assert!(echo(&mut busy), "a busy connection was closed");
        }
        // idle said nothing for 3 s: the forward closed it (EOF).
        idle.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(
            idle.read(&mut buf).unwrap_or(0),
            0,
            "the idle one is closed"
        );
    }

    #[test]
    fn the_listen_queue_holds_a_burst_beyond_std_s_128() {
        // Nobody accepts: every handshake the kernel completes waits in the queue. Past
        // the queue, SYNs are dropped and connect would wait for a retransmit (1 s).
        let listener = tcp_listener(SocketAddr::V4(local(0))).unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Vec<TcpStream> = (0..400)
            .map(|i| {
                TcpStream::connect_timeout(&addr, Duration::from_millis(700))
                    .unwrap_or_else(|e| panic!("connection {i} was not queued: {e}"))
            })
            .collect();
        assert_eq!(conns.len(), 400);
    }

    #[test]
    fn refusals_are_told_once_per_window_with_their_count() {
        let mut r = Refusals::new(local(1), 2);
        r.refused();
        assert_eq!(r.count, 0, "the first refusal is told at once");
        let told = r.last_warned.unwrap();
        for _ in 0..1000 {
            r.refused();
        }
        assert_eq!(r.count, 1000, "the next ones wait for the window");
        assert_eq!(r.last_warned, Some(told));
        r.last_warned = Some(told - WARN_EVERY);
        r.flush();
        assert_eq!(r.count, 0, "told with their count once the window passed");
    }

    #[test]
    fn a_busy_port_fails_at_start() {
        let squatter = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = squatter.local_addr().unwrap().port();
        let spec = spec(Proto::Tcp, local(port), local(9));
        assert!(Forward::start(spec).is_err());
    }
}
