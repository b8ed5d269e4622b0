//! Which addresses of the jail subnet answer on the bridge — jails or anything else
//! attached to it. The probe sends its own ARP requests on a packet socket bound to the
//! bridge and counts the replies, so the kernel's neighbour table is never touched.
//!
//! It once sent a datagram to every pool address and read the neighbour table instead. That
//! left about 240 INCOMPLETE entries whose retransmissions the kernel sends from one timer
//! run, all at once: each broadcast flooded to every bridge port overflowed the per-CPU
//! receive backlog and dropped packets in every namespace (a jail's first DNS answer among
//! them). Requests sent from this thread are each delivered before the next is sent, and
//! nothing is ever retransmitted.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use jrun_core::exec::Runner;
use jrun_core::net::{in_subnet, BRIDGE_IP, POOL, SUBNET};
use nix::libc;
use nix::sched::{sched_getcpu, sched_setaffinity, setns, CloneFlags, CpuSet};
use nix::unistd::Pid;
use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, Socket, Type};

use crate::names::{Layout, BRIDGE};

/// How long neighbours get to answer the ARP requests.
const ANSWER_WINDOW: Duration = Duration::from_millis(100);

/// Runs `f` on a thread that has entered network namespace `ns`; sockets `f` creates
/// belong to that namespace for their whole life.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let file = File::open(format!("/run/netns/{ns}"))?;
    std::thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
        f()
    })
    .join()
    .map_err(|_| std::io::Error::other("namespace thread panicked"))?
}

/// The pool addresses that answer ARP on the bridge of `vm_ns`.
pub fn addresses_in_use(_runner: &dyn Runner, vm_ns: &str) -> Result<BTreeSet<Ipv4Addr>, String> {
    in_netns(vm_ns, arp_sweep).map_err(|e| format!("cannot probe the bridge in {vm_ns}: {e}"))
}

/// Asks every pool address on the bridge once, then collects replies for up to
/// [`ANSWER_WINDOW`]. Runs inside the VM namespace.
///
/// The window is for whatever answers on the bridge at its own pace. When every port that
/// can carry an answer is one jrun made for a jail (a veth to a namespace on this machine),
/// each of those jails is asked for its own address once more after the sweep; a port's
/// requests are delivered, and its answers come back, in the order they were sent (one
/// queue each way, all sent from one CPU), so once every jail has answered that last
/// question nothing is left to hear and the probe ends. A bridge with no such port ends at
/// once; a port jrun did not make (a foreign namespace, a tap, a NIC) means the window.
fn arp_sweep() -> std::io::Result<BTreeSet<Ipv4Addr>> {
    let bridge = std::ffi::CString::new(BRIDGE).expect("no NUL in the bridge's name");
    // SAFETY: `bridge` is a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(bridge.as_ptr()) };
    if index == 0 {
        return Err(std::io::Error::last_os_error());
    }
    // `None`: some port is not a jail's, so only the window ends the probe.
    let last_questions: Option<Vec<Ipv4Addr>> = crate::nl::bridge_ports(BRIDGE)?
        .iter()
        .map(|p| {
            p.veth
                .then(|| Layout::bridge_port_address(&p.name))
                .flatten()
        })
        .collect();
    if last_questions.as_ref().is_some_and(Vec::is_empty) {
        // No port: nothing on the bridge can answer.
        return Ok(BTreeSet::new());
    }
    // Datagram packet socket: the kernel writes the Ethernet header, we the ARP payload.
    let socket = Socket::new(
        Domain::from(libc::AF_PACKET),
        Type::DGRAM,
        Some(Protocol::from(i32::from(ETH_P_ARP.to_be()))),
    )?;
    socket.bind(&link_addr(index, [0; 6]))?;
    // Bound to the bridge, the socket's own address is the bridge's MAC: the replies' target.
    let own_mac = mac_of(&socket.local_addr()?);
    let broadcast = link_addr(index, [0xff; 6]);
    // One CPU for every request: a veth queues what it is sent on the sending CPU's
    // backlog, so requests sent from two CPUs could be answered out of order. Unpinned
    // (a cpuset that refuses it), only the window ends the probe.
    let in_order = pin_to_this_cpu().is_ok();
    for last in POOL {
        let target = Ipv4Addr::new(
            SUBNET.octets()[0],
            SUBNET.octets()[1],
            SUBNET.octets()[2],
            last,
        );
        socket.send_to(&arp_request(own_mac, target), &broadcast)?;
    }
    // How many answers each jail still owes: the sweep's (its address is in the pool) and
    // the last question's.
    let mut owed: BTreeMap<Ipv4Addr, usize> = BTreeMap::new();
    for jail in last_questions.iter().flatten() {
        socket.send_to(&arp_request(own_mac, *jail), &broadcast)?;
        *owed.entry(*jail).or_default() += 1 + usize::from(in_pool(*jail));
    }
    let mut answered = BTreeSet::new();
    let deadline = Instant::now() + ANSWER_WINDOW;
    let mut buf = [0u8; 64];
    loop {
        if in_order && last_questions.is_some() && owed.values().all(|n| *n == 0) {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        socket.set_read_timeout(Some(left))?;
        match (&socket).read(&mut buf) {
            Ok(n) => {
                if let Some(sender) = replier(&buf[..n]) {
                    if let Some(n) = owed.get_mut(&sender) {
                        *n = n.saturating_sub(1);
                    }
                    if in_pool(sender) {
                        answered.insert(sender);
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(answered)
}

/// Keeps the calling thread (the probe's own) on the CPU it runs on.
fn pin_to_this_cpu() -> std::io::Result<()> {
    let mut set = CpuSet::new();
    set.set(sched_getcpu()?)?;
    sched_setaffinity(Pid::from_raw(0), &set)?;
    Ok(())
}

fn in_pool(ip: Ipv4Addr) -> bool {
    in_subnet(ip) && POOL.contains(&ip.octets()[3])
}

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IP: u16 = 0x0800;
const ARPHRD_ETHER: u16 = 1;
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;
/// An Ethernet/IPv4 ARP packet: 8 bytes of header, two (MAC, IPv4) pairs.
const ARP_LEN: usize = 28;

/// A link-layer address on interface `index` (the bridge), for bind and send.
fn link_addr(index: u32, mac: [u8; 6]) -> SockAddr {
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: `sockaddr_ll` is a socket address type of this platform.
    let ll = unsafe { storage.view_as::<libc::sockaddr_ll>() };
    ll.sll_family = libc::AF_PACKET as u16;
    ll.sll_protocol = ETH_P_ARP.to_be();
    ll.sll_ifindex = index as i32;
    ll.sll_halen = 6;
    ll.sll_addr[..6].copy_from_slice(&mac);
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: the first `len` bytes are the `sockaddr_ll` just written (the rest zeroed).
    unsafe { SockAddr::new(storage, len) }
}

/// The hardware address in a packet socket's `sockaddr_ll`.
fn mac_of(addr: &SockAddr) -> [u8; 6] {
    let mut storage = addr.clone().as_storage();
    // SAFETY: `addr` came from getsockname on an AF_PACKET socket: a `sockaddr_ll`.
    let ll = unsafe { storage.view_as::<libc::sockaddr_ll>() };
    let mut mac = [0; 6];
    mac.copy_from_slice(&ll.sll_addr[..6]);
    mac
}

/// "Who has `target`? Tell the bridge" (RFC 826), from the bridge's address.
fn arp_request(own_mac: [u8; 6], target: Ipv4Addr) -> [u8; ARP_LEN] {
    let mut p = [0u8; ARP_LEN];
    p[0..2].copy_from_slice(&ARPHRD_ETHER.to_be_bytes());
    p[2..4].copy_from_slice(&ETH_P_IP.to_be_bytes());
    p[4] = 6;
    p[5] = 4;
    p[6..8].copy_from_slice(&ARP_REQUEST.to_be_bytes());
    p[8..14].copy_from_slice(&own_mac);
    p[14..18].copy_from_slice(&BRIDGE_IP.octets());
    // Target MAC stays zero: unknown, which is the question.
    p[24..28].copy_from_slice(&target.octets());
    p
}

/// The subnet address that sent `packet`, when it is an ARP reply to the bridge's address.
fn replier(packet: &[u8]) -> Option<Ipv4Addr> {
    let p: &[u8; ARP_LEN] = packet.get(..ARP_LEN)?.try_into().ok()?;
    let field = |at: usize| u16::from_be_bytes([p[at], p[at + 1]]);
    if field(0) != ARPHRD_ETHER || field(2) != ETH_P_IP || p[4] != 6 || p[5] != 4 {
        return None;
    }
    let sender = Ipv4Addr::new(p[14], p[15], p[16], p[17]);
    let target = Ipv4Addr::new(p[24], p[25], p[26], p[27]);
    (field(6) == ARP_REPLY && target == BRIDGE_IP && in_subnet(sender)).then_some(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x6a, 0x72, 0x01, 0x02, 0x03];
    const JAIL_MAC: [u8; 6] = [0x02, 0x6b, 0x01, 0x02, 0x03, 0x0c];

    /// What a jail at `sender` answers to the bridge's request.
    fn reply(sender: Ipv4Addr, target: Ipv4Addr) -> [u8; ARP_LEN] {
        let mut p = arp_request(MAC, sender);
        p[6..8].copy_from_slice(&ARP_REPLY.to_be_bytes());
        p[8..14].copy_from_slice(&JAIL_MAC);
        p[14..18].copy_from_slice(&sender.octets());
        p[18..24].copy_from_slice(&MAC);
        p[24..28].copy_from_slice(&target.octets());
        p
    }

    #[test]
    fn the_request_asks_for_the_target_from_the_bridge() {
        let p = arp_request(MAC, Ipv4Addr::new(10, 17, 89, 12));
        assert_eq!(
            p,
            [
                0, 1, 8, 0, 6, 4, 0, 1, // Ethernet, IPv4, request
                0x02, 0x6a, 0x72, 1, 2, 3, 10, 17, 89, 1, // the bridge
                0, 0, 0, 0, 0, 0, 10, 17, 89, 12, // who has .12?
            ]
        );
    }

    #[test]
    fn only_replies_to_the_bridge_from_the_subnet_count() {
        let jail = Ipv4Addr::new(10, 17, 89, 12);
        assert_eq!(replier(&reply(jail, BRIDGE_IP)), Some(jail));
        // Our own requests, as the packet socket sees them go out.
        assert_eq!(replier(&arp_request(MAC, jail)), None);
        // A reply to someone else, one from outside the subnet, a short packet.
        assert_eq!(replier(&reply(jail, Ipv4Addr::new(10, 17, 89, 13))), None);
        // A jail at a static address outside the pool answers its last question, but no
        // sweep asks for its address.
        let outside = Ipv4Addr::new(10, 17, 89, 5);
        assert_eq!(replier(&reply(outside, BRIDGE_IP)), Some(outside));
        assert!(!in_pool(outside) && in_pool(jail));
        assert_eq!(
            replier(&reply(Ipv4Addr::new(10, 17, 88, 12), BRIDGE_IP)),
            None
        );
        assert_eq!(replier(&reply(jail, BRIDGE_IP)[..20]), None);
    }
}
