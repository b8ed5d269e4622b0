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
            Ok((client, _)) => {
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
