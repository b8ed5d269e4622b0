//! Host port forwards: listeners on the host's 127.0.0.1 relaying TCP streams and UDP
//! datagrams to a target inside the instance (the VM namespace's uplink address, where the
//! VM firewall's DNAT sends them on to the jail).

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use jrun_core::config::Proto;

use super::spec::ForwardSpec;

/// A UDP client with no traffic for this long loses its relay socket.
const UDP_IDLE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);

/// Per client address: its relay socket and when it was last heard from.
type UdpClients = Arc<Mutex<HashMap<SocketAddr, (Arc<UdpSocket>, Instant)>>>;

/// One running listener; dropping it stops it.
pub struct Forward {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Forward {
    /// Binds the listener now (so a busy port is reported at once) and serves it on a thread.
    pub fn start(spec: ForwardSpec) -> io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = match spec.proto {
            Proto::Tcp => {
                let listener = TcpListener::bind(spec.listen)?;
                listener.set_nonblocking(true)?;
                thread::spawn(move || serve_tcp(listener, spec, flag))
            }
            Proto::Udp => {
                let socket = UdpSocket::bind(spec.listen)?;
                socket.set_read_timeout(Some(POLL))?;
                thread::spawn(move || serve_udp(socket, spec, flag))
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

fn serve_tcp(listener: TcpListener, spec: ForwardSpec, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, peer)) => {
                if spec
                    .only_from
                    .is_some_and(|allowed| peer.ip() != std::net::IpAddr::V4(allowed))
                {
                    continue;
                }
                thread::spawn(move || {
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

/// Each client address gets its own connected socket towards the target, so replies find
/// their way back; a thread per client relays the replies.
fn serve_udp(socket: UdpSocket, spec: ForwardSpec, stop: Arc<AtomicBool>) {
    let socket = Arc::new(socket);
    let clients: UdpClients = Default::default();
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::SeqCst) {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => {
                tracing::warn!(listen = %spec.listen, error = %e, "udp receive failed");
                thread::sleep(POLL);
                continue;
            }
        };
        if spec
            .only_from
            .is_some_and(|allowed| from.ip() != std::net::IpAddr::V4(allowed))
        {
            continue;
        }
        let relay = {
            let mut map = clients.lock().expect("udp client map");
            if let Some((relay, seen)) = map.get_mut(&from) {
                *seen = Instant::now();
                Some(relay.clone())
            } else {
                match new_udp_relay(&spec) {
                    Ok(relay) => {
                        map.insert(from, (relay.clone(), Instant::now()));
                        let (reply_to, clients, stop) =
                            (socket.clone(), clients.clone(), stop.clone());
                        let back = relay.clone();
                        thread::spawn(move || udp_replies(back, reply_to, from, clients, stop));
                        Some(relay)
                    }
                    Err(e) => {
                        tracing::warn!(target = %spec.target, error = %e, "udp relay socket failed");
                        None
                    }
                }
            }
        };
        if let Some(relay) = relay {
            let _ = relay.send(&buf[..n]);
        }
    }
}

fn new_udp_relay(spec: &ForwardSpec) -> io::Result<Arc<UdpSocket>> {
    let s = UdpSocket::bind("0.0.0.0:0")?;
    s.connect(spec.target)?;
    s.set_read_timeout(Some(POLL))?;
    Ok(Arc::new(s))
}

fn udp_replies(
    relay: Arc<UdpSocket>,
    reply_to: Arc<UdpSocket>,
    client: SocketAddr,
    clients: UdpClients,
    stop: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::SeqCst) {
        match relay.recv(&mut buf) {
            Ok(n) => {
                let _ = reply_to.send_to(&buf[..n], client);
                if let Some(entry) = clients.lock().expect("udp client map").get_mut(&client) {
                    entry.1 = Instant::now();
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                let mut map = clients.lock().expect("udp client map");
                if map
                    .get(&client)
                    .is_some_and(|(_, seen)| seen.elapsed() > UDP_IDLE)
                {
                    map.remove(&client);
                    return;
                }
            }
            // ICMP port unreachable from the target surfaces here; keep the relay.
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn local(port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)
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
        let target_addr = match target.local_addr().unwrap() {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => unreachable!(),
        };
        thread::spawn(move || {
            let (mut c, _) = target.accept().unwrap();
            let mut buf = [0u8; 5];
            c.read_exact(&mut buf).unwrap();
            c.write_all(&buf.to_ascii_uppercase()).unwrap();
        });
        let listen = local(free_port());
        let _fwd = Forward::start(ForwardSpec {
            proto: Proto::Tcp,
            listen,
            target: target_addr,
            only_from: None,
        })
        .unwrap();
        let mut c = TcpStream::connect(listen).unwrap();
        c.write_all(b"hello").unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        assert_eq!(answer, "HELLO");
    }

    #[test]
    fn udp_replies_reach_the_client_and_strangers_are_ignored() {
        let target = UdpSocket::bind("127.0.0.1:0").unwrap();
        let target_addr = match target.local_addr().unwrap() {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => unreachable!(),
        };
        thread::spawn(move || loop {
            let mut buf = [0u8; 64];
            let (n, from) = target.recv_from(&mut buf).unwrap();
            target
                .send_to(&buf[..n].to_ascii_uppercase(), from)
                .unwrap();
        });
        let open = local(free_port());
        let _open = Forward::start(ForwardSpec {
            proto: Proto::Udp,
            listen: open,
            target: target_addr,
            only_from: None,
        })
        .unwrap();
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

    #[test]
    fn a_busy_port_fails_at_start() {
        let squatter = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = squatter.local_addr().unwrap().port();
        let spec = ForwardSpec {
            proto: Proto::Tcp,
            listen: local(port),
            target: local(9),
            only_from: None,
        };
        assert!(Forward::start(spec).is_err());
    }
}
