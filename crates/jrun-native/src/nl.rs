//! Netlink requests to the kernel, for the reads that run on every `up` (where spawning
//! `ip` or `nft` per jail would cost more than the work itself). One request, its answers
//! read up to the kernel's acknowledgement or the end of a dump.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;

/// One message of an answer: its type and what follows its header.
pub struct Message {
    pub kind: u16,
    pub body: Vec<u8>,
}

/// A request's body: a fixed header, then attributes (type, bytes).
pub struct Request {
    pub kind: u16,
    pub dump: bool,
    pub header: Vec<u8>,
    pub attrs: Vec<(u16, Vec<u8>)>,
    /// Extra NLM_F_* flags (create, exclusive, replace).
    pub flags: u16,
}

const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

/// One attribute, encoded (length, type, value, padding): nested attributes are these
/// concatenated.
pub fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + value.len() + 3);
    out.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    pad(&mut out);
    out
}

fn c_string(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

impl Request {
    fn encode(&self, seq: u32) -> Vec<u8> {
        let mut out = vec![0; NLMSG_HDRLEN];
        out.extend_from_slice(&self.header);
        pad(&mut out);
        for (kind, value) in &self.attrs {
            let len = 4 + value.len();
            out.extend_from_slice(&(len as u16).to_ne_bytes());
            out.extend_from_slice(&kind.to_ne_bytes());
            out.extend_from_slice(value);
            pad(&mut out);
        }
        let flags = NLM_F_REQUEST | self.flags | if self.dump { NLM_F_DUMP } else { NLM_F_ACK };
        let len = out.len() as u32;
        out[0..4].copy_from_slice(&len.to_ne_bytes());
        out[4..6].copy_from_slice(&self.kind.to_ne_bytes());
        out[6..8].copy_from_slice(&flags.to_ne_bytes());
        out[8..12].copy_from_slice(&seq.to_ne_bytes());
        out
    }
}

fn pad(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// Sends `req` on a fresh socket of `protocol` in the calling thread's network namespace
/// and returns the answers (not the acknowledgement). A kernel error is an `io::Error`
/// with its errno.
pub fn transact(protocol: SockProtocol, req: &Request) -> io::Result<Vec<Message>> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        protocol,
    )?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
    let seq = 1;
    send(fd.as_raw_fd(), &req.encode(seq), MsgFlags::empty())?;
    let mut answers = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        let mut at = 0;
        while at + NLMSG_HDRLEN <= n {
            let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
            let kind = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().expect("2 bytes"));
            if len < NLMSG_HDRLEN || at + len > n {
                return Err(io::Error::other("malformed netlink answer"));
            }
            let body = &buf[at + NLMSG_HDRLEN..at + len];
            match kind {
                NLMSG_DONE => return Ok(answers),
                NLMSG_ERROR => {
                    let errno = i32::from_ne_bytes(
                        body.get(0..4)
                            .ok_or_else(|| io::Error::other("short netlink error"))?
                            .try_into()
                            .expect("4 bytes"),
                    );
                    return if errno == 0 {
                        Ok(answers)
                    } else {
                        Err(io::Error::from_raw_os_error(-errno))
                    };
                }
                _ => answers.push(Message {
                    kind,
                    body: body.to_vec(),
                }),
            }
            at += (len + 3) & !3;
        }
    }
}

/// The attributes of a message body after its fixed header of `skip` bytes.
pub fn attrs(body: &[u8], skip: usize) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = (skip + 3) & !3;
    while at + 4 <= body.len() {
        let len = u16::from_ne_bytes([body[at], body[at + 1]]) as usize;
        let kind = u16::from_ne_bytes([body[at + 2], body[at + 3]]) & 0x3fff;
        if len < 4 || at + len > body.len() {
            break;
        }
        out.push((kind, &body[at + 4..at + len]));
        at += (len + 3) & !3;
    }
    out
}

/// Whether nftables table `name` of family `inet` exists in the calling thread's network
/// namespace: what `nft list table inet <name>` answers, without the process.
pub fn nft_inet_table_exists(name: &str) -> io::Result<bool> {
    const NFNL_SUBSYS_NFTABLES: u16 = 10;
    const NFT_MSG_GETTABLE: u16 = 1;
    const NFTA_TABLE_NAME: u16 = 1;
    const NFPROTO_INET: u8 = 1;
    let mut table = name.as_bytes().to_vec();
    table.push(0);
    let req = Request {
        kind: (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE,
        dump: false,
        // struct nfgenmsg: family, version (NFNETLINK_V0), resource id.
        header: vec![NFPROTO_INET, 0, 0, 0],
        attrs: vec![(NFTA_TABLE_NAME, table)],
        flags: 0,
    };
    match transact(SockProtocol::NetlinkNetFilter, &req) {
        Ok(answers) => Ok(!answers.is_empty()),
        Err(e) if e.raw_os_error() == Some(nix::libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The nftables ruleset generation of the calling thread's network namespace: the kernel
/// counts every committed change there, by anyone, so an unchanged generation means an
/// unchanged ruleset.
pub fn nft_generation() -> io::Result<u32> {
    const NFNL_SUBSYS_NFTABLES: u16 = 10;
    const NFT_MSG_NEWGEN: u16 = 15;
    const NFT_MSG_GETGEN: u16 = 16;
    const NFTA_GEN_ID: u16 = 1;
    let req = Request {
        kind: (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN,
        dump: false,
        header: vec![nix::libc::AF_UNSPEC as u8, 0, 0, 0],
        attrs: vec![],
        flags: 0,
    };
    transact(SockProtocol::NetlinkNetFilter, &req)?
        .iter()
        .filter(|m| m.kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN)
        .find_map(|m| {
            attrs(&m.body, 4)
                .into_iter()
                .find(|(k, _)| *k == NFTA_GEN_ID)
                .and_then(|(_, v)| <[u8; 4]>::try_from(v).ok())
                .map(u32::from_be_bytes)
        })
        .ok_or_else(|| io::Error::other("the kernel gave no nftables generation"))
}

/// The IPv4 addresses (with prefix length) of interface `ifname` in the calling thread's
/// network namespace.
pub fn ipv4_addresses(ifname: &str) -> io::Result<Vec<(Ipv4Addr, u8)>> {
    const RTM_NEWADDR: u16 = 20;
    const RTM_GETADDR: u16 = 22;
    const IFA_ADDRESS: u16 = 1;
    const IFA_LOCAL: u16 = 2;
    let Some(index) = if_index(ifname) else {
        return Ok(Vec::new());
    };
    let req = Request {
        kind: RTM_GETADDR,
        dump: true,
        // struct ifaddrmsg: family, prefixlen, flags, scope, index.
        header: vec![nix::libc::AF_INET as u8, 0, 0, 0, 0, 0, 0, 0],
        attrs: vec![],
        flags: 0,
    };
    let mut out = Vec::new();
    for m in transact(SockProtocol::NetlinkRoute, &req)? {
        if m.kind != RTM_NEWADDR || m.body.len() < 8 {
            continue;
        }
        let prefix = m.body[1];
        let idx = u32::from_ne_bytes(m.body[4..8].try_into().expect("4 bytes"));
        if idx != index {
            continue;
        }
        let attrs = attrs(&m.body, 8);
        let addr = attrs
            .iter()
            .find(|(k, _)| *k == IFA_LOCAL)
            .or_else(|| attrs.iter().find(|(k, _)| *k == IFA_ADDRESS));
        if let Some((_, v)) = addr {
            if let Ok(octets) = <[u8; 4]>::try_from(*v) {
                out.push((Ipv4Addr::from(octets), prefix));
            }
        }
    }
    Ok(out)
}

/// Whether the main table of the calling thread's network namespace has an IPv4 default
/// route.
pub fn has_ipv4_default_route() -> io::Result<bool> {
    const RTM_NEWROUTE: u16 = 24;
    const RTM_GETROUTE: u16 = 26;
    const RT_TABLE_MAIN: u8 = 254;
    const RTA_TABLE: u16 = 15;
    let req = Request {
        kind: RTM_GETROUTE,
        dump: true,
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
        header: vec![nix::libc::AF_INET as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        attrs: vec![],
        flags: 0,
    };
    Ok(transact(SockProtocol::NetlinkRoute, &req)?
        .iter()
        .filter(|m| m.kind == RTM_NEWROUTE && m.body.len() >= 12)
        .any(|m| {
            let table = attrs(&m.body, 12)
                .iter()
                .find(|(k, _)| *k == RTA_TABLE)
                .and_then(|(_, v)| <[u8; 4]>::try_from(*v).ok())
                .map_or(u32::from(m.body[4]), u32::from_ne_bytes);
            m.body[1] == 0 && table == u32::from(RT_TABLE_MAIN)
        }))
}

/// The index of interface `ifname` in the calling thread's network namespace.
/// A port of a bridge: its name and whether it is one end of a veth pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgePort {
    pub name: String,
    pub veth: bool,
}

/// The ports of bridge `bridge` in the calling thread's network namespace that can carry
/// traffic now (up, with a carrier).
pub fn bridge_ports(bridge: &str) -> io::Result<Vec<BridgePort>> {
    const RTM_NEWLINK: u16 = 16;
    const RTM_GETLINK: u16 = 18;
    const IFLA_IFNAME: u16 = 3;
    const IFLA_MASTER: u16 = 10;
    const IFLA_LINKINFO: u16 = 18;
    const IFLA_INFO_KIND: u16 = 1;
    const IFF_UP: u32 = 0x1;
    const IFF_LOWER_UP: u32 = 0x1_0000;
    let Some(master) = if_index(bridge) else {
        return Err(io::Error::from_raw_os_error(nix::libc::ENODEV));
    };
    let req = Request {
        kind: RTM_GETLINK,
        dump: true,
        // struct ifinfomsg: family, pad, type, index, flags, change.
        header: vec![0; 16],
        attrs: vec![],
        flags: 0,
    };
    let mut out = Vec::new();
    for m in transact(SockProtocol::NetlinkRoute, &req)? {
        if m.kind != RTM_NEWLINK || m.body.len() < 16 {
            continue;
        }
        let flags = u32::from_ne_bytes(m.body[8..12].try_into().expect("4 bytes"));
        let attrs = attrs(&m.body, 16);
        let find = |kind: u16| attrs.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v);
        let on_bridge = find(IFLA_MASTER)
            .and_then(|v| <[u8; 4]>::try_from(v).ok())
            .is_some_and(|v| u32::from_ne_bytes(v) == master);
        if !on_bridge || flags & (IFF_UP | IFF_LOWER_UP) != IFF_UP | IFF_LOWER_UP {
            continue;
        }
        let text = |v: &[u8]| {
            String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or(v)).into_owned()
        };
        let veth = find(IFLA_LINKINFO).is_some_and(|info| {
            self::attrs(info, 0)
                .iter()
                .any(|(k, v)| *k == IFLA_INFO_KIND && text(v) == "veth")
        });
        out.push(BridgePort {
            name: find(IFLA_IFNAME).map(text).unwrap_or_default(),
            veth,
        });
    }
    Ok(out)
}

fn if_index(ifname: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(ifname).ok()
}

/// Deletes the neighbour entry for `ip` on `ifname` in the calling thread's network
/// namespace. Absent (entry or interface) is done.
pub fn delete_neighbour(ifname: &str, ip: Ipv4Addr) -> io::Result<()> {
    const RTM_DELNEIGH: u16 = 29;
    const NDA_DST: u16 = 1;
    let Some(index) = if_index(ifname) else {
        return Ok(());
    };
    // struct ndmsg: family, pad, pad, ifindex, state, flags, type.
    let mut header = vec![nix::libc::AF_INET as u8, 0, 0, 0];
    header.extend_from_slice(&(index as i32).to_ne_bytes());
    header.extend_from_slice(&[0, 0, 0, 0]);
    let req = Request {
        kind: RTM_DELNEIGH,
        dump: false,
        header,
        attrs: vec![(NDA_DST, ip.octets().to_vec())],
        flags: 0,
    };
    match transact(SockProtocol::NetlinkRoute, &req) {
        Err(e) if is_gone(&e) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Takes interface `ifname` of the calling thread's network namespace down. Absent is done.
pub fn set_link_down(ifname: &str) -> io::Result<()> {
    match set_link_up_or_down(ifname, false) {
        Err(e) if is_gone(&e) => Ok(()),
        other => other,
    }
}

/// Brings interface `ifname` of the calling thread's network namespace up.
pub fn set_link_up(ifname: &str) -> io::Result<()> {
    set_link_up_or_down(ifname, true)
}

fn set_link_up_or_down(ifname: &str, up: bool) -> io::Result<()> {
    const RTM_NEWLINK: u16 = 16;
    const IFF_UP: u32 = 1;
    let index = if_index(ifname).ok_or_else(|| no_device(ifname))?;
    let req = Request {
        kind: RTM_NEWLINK,
        dump: false,
        header: ifinfomsg(index, if up { IFF_UP } else { 0 }, IFF_UP),
        attrs: vec![],
        flags: 0,
    };
    transact(SockProtocol::NetlinkRoute, &req).map(|_| ())
}

fn no_device(ifname: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "no interface {ifname}: {}",
            io::Error::from_raw_os_error(nix::libc::ENODEV)
        ),
    )
}

/// struct ifinfomsg: family, pad, type, index, flags, change.
fn ifinfomsg(index: u32, flags: u32, change: u32) -> Vec<u8> {
    let mut h = vec![nix::libc::AF_UNSPEC as u8, 0, 0, 0];
    h.extend_from_slice(&(index as i32).to_ne_bytes());
    h.extend_from_slice(&flags.to_ne_bytes());
    h.extend_from_slice(&change.to_ne_bytes());
    h
}

/// Creates veth `name` (up, a port of bridge `master`) in the calling thread's network
/// namespace, its peer `peer` with MAC `peer_mac` in the namespace `peer_ns` (down): what
/// `ip link add <name> type veth peer name <peer> address <mac> netns <ns>` and `ip link
/// set <name> master <master> up` do.
pub fn add_veth_port(
    name: &str,
    master: &str,
    peer: &str,
    peer_mac: [u8; 6],
    peer_ns: &std::fs::File,
) -> io::Result<()> {
    const RTM_NEWLINK: u16 = 16;
    const IFF_UP: u32 = 1;
    const IFLA_ADDRESS: u16 = 1;
    const IFLA_IFNAME: u16 = 3;
    const IFLA_MASTER: u16 = 10;
    const IFLA_LINKINFO: u16 = 18;
    const IFLA_NET_NS_FD: u16 = 28;
    const IFLA_INFO_KIND: u16 = 1;
    const IFLA_INFO_DATA: u16 = 2;
    const VETH_INFO_PEER: u16 = 1;
    let bridge = if_index(master).ok_or_else(|| no_device(master))?;
    let mut peer_info = ifinfomsg(0, 0, 0);
    peer_info.extend(attr(IFLA_IFNAME, &c_string(peer)));
    peer_info.extend(attr(IFLA_ADDRESS, &peer_mac));
    peer_info.extend(attr(
        IFLA_NET_NS_FD,
        &(peer_ns.as_raw_fd() as u32).to_ne_bytes(),
    ));
    let mut info = attr(IFLA_INFO_KIND, b"veth");
    info.extend(attr(IFLA_INFO_DATA, &attr(VETH_INFO_PEER, &peer_info)));
    let req = Request {
        kind: RTM_NEWLINK,
        dump: false,
        header: ifinfomsg(0, IFF_UP, IFF_UP),
        attrs: vec![
            (IFLA_IFNAME, c_string(name)),
            (IFLA_MASTER, bridge.to_ne_bytes().to_vec()),
            (IFLA_LINKINFO, info),
        ],
        flags: NLM_F_CREATE | NLM_F_EXCL,
    };
    transact(SockProtocol::NetlinkRoute, &req).map(|_| ())
}

/// Adds `ip/prefix` to `ifname` in the calling thread's network namespace (`ip addr add`).
pub fn add_address(ifname: &str, ip: Ipv4Addr, prefix: u8) -> io::Result<()> {
    const RTM_NEWADDR: u16 = 20;
    const IFA_ADDRESS: u16 = 1;
    const IFA_LOCAL: u16 = 2;
    let index = if_index(ifname).ok_or_else(|| no_device(ifname))?;
    // struct ifaddrmsg: family, prefixlen, flags, scope (universe), index.
    let mut header = vec![nix::libc::AF_INET as u8, prefix, 0, 0];
    header.extend_from_slice(&index.to_ne_bytes());
    let req = Request {
        kind: RTM_NEWADDR,
        dump: false,
        header,
        attrs: vec![
            (IFA_LOCAL, ip.octets().to_vec()),
            (IFA_ADDRESS, ip.octets().to_vec()),
        ],
        flags: NLM_F_CREATE | NLM_F_EXCL,
    };
    transact(SockProtocol::NetlinkRoute, &req).map(|_| ())
}

/// Adds the IPv4 default route via `gateway` to the main table of the calling thread's
/// network namespace (`ip route add default via <gateway>`).
pub fn add_default_route(gateway: Ipv4Addr) -> io::Result<()> {
    const RTM_NEWROUTE: u16 = 24;
    const RTA_GATEWAY: u16 = 5;
    const RT_TABLE_MAIN: u8 = 254;
    const RTPROT_BOOT: u8 = 3;
    const RT_SCOPE_UNIVERSE: u8 = 0;
    const RTN_UNICAST: u8 = 1;
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
    let mut header = vec![
        nix::libc::AF_INET as u8,
        0,
        0,
        0,
        RT_TABLE_MAIN,
        RTPROT_BOOT,
        RT_SCOPE_UNIVERSE,
        RTN_UNICAST,
    ];
    header.extend_from_slice(&0u32.to_ne_bytes());
    let req = Request {
        kind: RTM_NEWROUTE,
        dump: false,
        header,
        attrs: vec![(RTA_GATEWAY, gateway.octets().to_vec())],
        flags: NLM_F_CREATE | NLM_F_EXCL,
    };
    transact(SockProtocol::NetlinkRoute, &req).map(|_| ())
}

/// A permanent neighbour entry `ip` → `mac` on `ifname` in the calling thread's network
/// namespace (`ip neigh replace <ip> lladdr <mac> dev <ifname> nud permanent`).
pub fn set_permanent_neighbour(ifname: &str, ip: Ipv4Addr, mac: [u8; 6]) -> io::Result<()> {
    const RTM_NEWNEIGH: u16 = 28;
    const NDA_DST: u16 = 1;
    const NDA_LLADDR: u16 = 2;
    const NUD_PERMANENT: u16 = 0x80;
    let index = if_index(ifname).ok_or_else(|| no_device(ifname))?;
    let mut header = vec![nix::libc::AF_INET as u8, 0, 0, 0];
    header.extend_from_slice(&(index as i32).to_ne_bytes());
    header.extend_from_slice(&NUD_PERMANENT.to_ne_bytes());
    header.extend_from_slice(&[0, 0]);
    let req = Request {
        kind: RTM_NEWNEIGH,
        dump: false,
        header,
        attrs: vec![(NDA_DST, ip.octets().to_vec()), (NDA_LLADDR, mac.to_vec())],
        flags: NLM_F_CREATE | NLM_F_REPLACE,
    };
    transact(SockProtocol::NetlinkRoute, &req).map(|_| ())
}

/// "Already gone": what a deletion of something another deletion (or the kernel) took
/// first answers; done, as netavark treats it.
pub fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || matches!(
            e.raw_os_error(),
            Some(nix::libc::ENOENT | nix::libc::ENODEV | nix::libc::ESRCH)
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use jrun_core::exec::{Cmd, Runner, SystemRunner};

    fn ip(ns: &str, args: &str) -> String {
        let mut argv = vec!["ip", "-n", ns];
        argv.extend(args.split_whitespace());
        let out = SystemRunner.run(&Cmd::new(argv)).unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Real (root): every read and deletion against what `ip` and `nft` see.
    #[test]
    fn reads_and_deletions_match_ip_and_nft() {
        let ns = format!("jrun-nltest-nl-{}", std::process::id());
        crate::netns::add(&ns).unwrap();
        let result = std::panic::catch_unwind(|| {
            let inside = |f: fn() -> io::Result<bool>| crate::probe::in_netns(&ns, f).unwrap();
            assert!(!inside(|| nft_inet_table_exists("jrun")));
            crate::plumbing::nft_apply(&SystemRunner, &ns, "table inet jrun {}\n").unwrap();
            assert!(inside(|| nft_inet_table_exists("jrun")));
            assert!(!inside(|| nft_inet_table_exists("other")));
            let gen = crate::probe::in_netns(&ns, nft_generation).unwrap();
            assert_eq!(crate::probe::in_netns(&ns, nft_generation).unwrap(), gen);
            crate::plumbing::nft_apply(&SystemRunner, &ns, "add chain inet jrun c\n").unwrap();
            assert_eq!(
                crate::probe::in_netns(&ns, nft_generation).unwrap(),
                gen.wrapping_add(1),
                "one transaction, one generation"
            );

            ip(&ns, "link add d0 type veth peer name d1");
            ip(&ns, "addr add 10.9.9.9/24 dev d0");
            ip(&ns, "link set d0 up");
            assert!(!inside(has_ipv4_default_route));
            ip(&ns, "route add default via 10.9.9.1");
            assert!(inside(has_ipv4_default_route));
            let addrs = crate::probe::in_netns(&ns, || ipv4_addresses("d0")).unwrap();
            assert_eq!(addrs, [(Ipv4Addr::new(10, 9, 9, 9), 24)]);
            let none = crate::probe::in_netns(&ns, || ipv4_addresses("nope")).unwrap();
            assert!(none.is_empty());

            ip(
                &ns,
                "neigh replace 10.9.9.5 lladdr 02:00:00:00:00:05 dev d0 nud permanent",
            );
            assert!(ip(&ns, "neigh show dev d0").contains("10.9.9.5"));
            let gone = Ipv4Addr::new(10, 9, 9, 5);
            crate::probe::in_netns(&ns, move || delete_neighbour("d0", gone)).unwrap();
            assert!(!ip(&ns, "neigh show dev d0").contains("10.9.9.5"));
            // Already gone, and on a missing interface: done.
            crate::probe::in_netns(&ns, move || delete_neighbour("d0", gone)).unwrap();
            crate::probe::in_netns(&ns, move || delete_neighbour("nope", gone)).unwrap();

            crate::probe::in_netns(&ns, || set_link_down("d0")).unwrap();
            assert!(!ip(&ns, "link show d0").contains(",UP"));
            crate::probe::in_netns(&ns, || set_link_down("nope")).unwrap();
        });
        crate::netns::delete(&ns).unwrap();
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    }
}
