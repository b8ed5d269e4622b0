//! The UDP side of a host port forward: one connected relay socket (and reply thread) per
//! client address, so replies find their way back to the client that asked.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::forward::{Limits, POLL};
use super::spec::ForwardSpec;

/// One UDP client's relay socket, when it was last heard from, and the flag that tells
/// its reply thread to stop (set when it is evicted).
struct UdpClient {
    relay: Arc<UdpSocket>,
    seen: Instant,
    closed: Arc<AtomicBool>,
}

type UdpClients = Arc<Mutex<HashMap<SocketAddr, UdpClient>>>;

/// Each client address gets its own connected socket towards the target, so replies find
/// their way back; a thread per client relays the replies. At most `limits.udp_clients`
/// at once: a new client evicts the least recently heard one.
pub(super) fn serve_udp(
    socket: UdpSocket,
    spec: ForwardSpec,
    limits: Limits,
    stop: Arc<AtomicBool>,
) {
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
            if let Some(c) = map.get_mut(&from) {
                c.seen = Instant::now();
                Some(c.relay.clone())
            } else {
                match new_udp_relay(&spec) {
                    Ok(relay) => {
                        while map.len() >= limits.udp_clients.max(1) {
                            evict_oldest(&mut map);
                        }
                        let closed = Arc::new(AtomicBool::new(false));
                        map.insert(
                            from,
                            UdpClient {
                                relay: relay.clone(),
                                seen: Instant::now(),
                                closed: closed.clone(),
                            },
                        );
                        let replies = UdpReplies {
                            relay: relay.clone(),
                            reply_to: socket.clone(),
                            client: from,
                            clients: clients.clone(),
                            idle: limits.udp_idle,
                            stop: stop.clone(),
                            closed,
                        };
                        thread::spawn(move || replies.run());
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

/// Drops the least recently heard client; its reply thread sees the flag within `POLL`
/// and ends, closing the socket.
fn evict_oldest(map: &mut HashMap<SocketAddr, UdpClient>) {
    let oldest = map
        .iter()
        .min_by_key(|(_, c)| c.seen)
        .map(|(addr, _)| *addr);
    if let Some(c) = oldest.and_then(|addr| map.remove(&addr)) {
        c.closed.store(true, Ordering::SeqCst);
    }
}

fn new_udp_relay(spec: &ForwardSpec) -> io::Result<Arc<UdpSocket>> {
    let s = UdpSocket::bind("0.0.0.0:0")?;
    s.connect(spec.target)?;
    s.set_read_timeout(Some(POLL))?;
    Ok(Arc::new(s))
}

/// The reply side of one UDP client.
struct UdpReplies {
    relay: Arc<UdpSocket>,
    reply_to: Arc<UdpSocket>,
    client: SocketAddr,
    clients: UdpClients,
    idle: Duration,
    stop: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
}

impl UdpReplies {
    fn run(self) {
        let mut buf = vec![0u8; 65536];
        while !self.stop.load(Ordering::SeqCst) && !self.closed.load(Ordering::SeqCst) {
            match self.relay.recv(&mut buf) {
                Ok(n) => {
                    let _ = self.reply_to.send_to(&buf[..n], self.client);
                    if let Some(c) = self.own(&mut self.clients.lock().expect("udp client map")) {
                        c.seen = Instant::now();
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    let mut map = self.clients.lock().expect("udp client map");
                    if self
                        .own(&mut map)
                        .is_some_and(|c| c.seen.elapsed() > self.idle)
                    {
                        map.remove(&self.client);
                        return;
                    }
                }
                // ICMP port unreachable from the target surfaces here; keep the relay.
                Err(_) => {}
            }
        }
    }

    /// This client's entry, unless it was evicted (and the address perhaps taken again).
    fn own<'m>(&self, map: &'m mut HashMap<SocketAddr, UdpClient>) -> Option<&'m mut UdpClient> {
        map.get_mut(&self.client)
            .filter(|c| Arc::ptr_eq(&c.closed, &self.closed))
    }
}
