//! A small model of pf's filter-rule evaluation, for the subset of pf.conf(5) that jrun
//! renders (the VM's ruleset and each jail's), to ask what a ruleset decides for the first
//! packet of a connection. There is no pfctl on this machine, so this stands in for one; it
//! refuses (panics on) any word it does not understand, so a rule it cannot read fails the
//! test instead of being skipped.
//!
//! What it models, after pf.conf(5) ("PACKET FILTERING", "TABLES", "PARAMETERS") and
//! FreeBSD's sbin/pfctl/parse.y and sys/netpfil/pf/pf.c:
//! - rules are read top to bottom; the last matching rule decides, except that a matching
//!   `quick` rule decides at once; a packet no rule matches passes;
//! - `set skip on <if>`: packets on that interface are not filtered at all;
//! - macros (`name = "value"`) are expanded; lists `{ a, b }` / `{ a b }` (commas optional)
//!   match any item;
//! - `in`/`out` (neither: both), `on <if>`, `inet`/`inet6`, `proto` tcp/udp/icmp/icmp6,
//!   `all`, `from`/`to` with `any`, addresses and prefixes of either family, `(if)`/`(self)`,
//!   `<table>` and `!`; an address of one family matches only packets of that family (pfctl
//!   drops the other family when it expands a rule), `any`, tables and `(if)` match both;
//! - `port` after `to` with numbers only; as pfctl's `rule_consistent`, a port needs
//!   `proto tcp`/`udp` and `icmp6-type` needs `proto icmp6`;
//! - `table <name> [persist|const|counters] [{ address[/prefix] ... }]`, and
//!   [`Ruleset::replace_table`] for `pfctl -t name -T replace` (how `jrun pair` updates a
//!   table live); a table a rule names but no line defines is empty, as pfctl creates it;
//! - `keep state`, `flags S/SA`, `flags any` and `(sloppy)`: the first packet (a SYN for
//!   TCP) matches them all, and state is not modelled beyond it.
//!
//! `nat`, `rdr`, `rdr-anchor`, `nat-anchor`, `load anchor` and `scrub` are translation,
//! setup or normalisation, not filtering, and are skipped; a filter `anchor` is refused.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

/// A machine as pf sees it: its interfaces and their addresses.
pub struct Vm {
    pub interfaces: Vec<(&'static str, IpAddr)>,
}

impl Vm {
    /// jrun's guest: vtnet0 on QEMU's user network, bridge0 for the jails, lo0.
    pub fn jrun_guest() -> Vm {
        Vm {
            interfaces: vec![
                ("vtnet0", Ipv4Addr::new(10, 0, 2, 15).into()),
                ("bridge0", Ipv4Addr::new(10, 17, 89, 1).into()),
                ("lo0", Ipv4Addr::new(127, 0, 0, 1).into()),
            ],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    In,
    Out,
}

/// The first packet of a connection (a TCP SYN), or a single ICMPv6 message.
#[derive(Debug, Clone, Copy)]
pub struct Packet {
    pub iface: &'static str,
    pub dir: Dir,
    /// `tcp`, `udp`, `icmp` or `icmp6`.
    pub proto: &'static str,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The destination port (tcp/udp), 0 otherwise.
    pub dport: u16,
    /// The ICMPv6 type by pf's name (`echoreq`, `neighbrsol`, …).
    pub icmp6_type: Option<&'static str>,
}

impl Packet {
    /// An inbound tcp or udp packet to `dport`.
    pub fn inbound(
        iface: &'static str,
        proto: &'static str,
        src: IpAddr,
        dst: IpAddr,
        dport: u16,
    ) -> Packet {
        assert!(matches!(proto, "tcp" | "udp"), "ports are tcp/udp: {proto}");
        Packet {
            iface,
            dir: Dir::In,
            proto,
            src,
            dst,
            dport,
            icmp6_type: None,
        }
    }

    /// An inbound ICMPv6 message of `kind`.
    pub fn icmp6_in(iface: &'static str, src: IpAddr, dst: IpAddr, kind: &'static str) -> Packet {
        assert!(src.is_ipv6() && dst.is_ipv6());
        Packet {
            iface,
            dir: Dir::In,
            proto: "icmp6",
            src,
            dst,
            dport: 0,
            icmp6_type: Some(kind),
        }
    }

    /// The same packet going out.
    pub fn outbound(self) -> Packet {
        Packet {
            dir: Dir::Out,
            ..self
        }
    }
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Verdict {
    Pass,
    Block,
}

#[derive(Debug, Clone)]
enum Host {
    Any,
    Net(IpAddr, u8),
    /// `(ifname)` or `(self)`: the interface's addresses when the packet is checked.
    Dynamic(String),
    /// `<name>`: the table's addresses when the packet is checked.
    Table(String),
    Not(Box<Host>),
}

#[derive(Debug, Clone)]
struct Rule {
    line: String,
    pass: bool,
    /// `None`: both directions.
    dir: Option<Dir>,
    quick: bool,
    on: Option<String>,
    /// `None`: both families.
    inet6: Option<bool>,
    protos: Vec<String>,
    from: Vec<Host>,
    to: Vec<Host>,
    ports: Vec<u16>,
    icmp6_types: Vec<String>,
}

/// The filter rules and tables of `conf`, parsed. Panics on a word outside the modelled
/// subset.
pub struct Ruleset {
    rules: Vec<Rule>,
    tables: BTreeMap<String, Vec<(IpAddr, u8)>>,
    skip: Vec<String>,
}

fn expand_macros(conf: &str) -> Vec<String> {
    let mut macros: BTreeMap<String, String> = BTreeMap::new();
    let mut lines = Vec::new();
    for raw in conf.lines() {
        let line = raw.split('#').next().unwrap().trim();
        if line.is_empty() {
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "the model does not join continued lines: {raw:?}"
        );
        if let Some((name, value)) = line.split_once(" = ") {
            if !name.contains(' ') {
                macros.insert(name.to_string(), value.trim_matches('"').to_string());
                continue;
            }
        }
        let mut out = line.to_string();
        // Longest names first, so `$jail_net` is not read as `$jail` + `_net`.
        let mut names: Vec<&String> = macros.keys().collect();
        names.sort_by_key(|n| std::cmp::Reverse(n.len()));
        for n in names {
            out = out.replace(&format!("${n}"), &macros[n]);
        }
        assert!(!out.contains('$'), "undefined macro in {raw:?}");
        lines.push(out);
    }
    lines
}

/// Splits a rule into words, with `{`, `}`, `(`, `)`, `,`, `!`, `<` and `>` as words of
/// their own.
fn words(line: &str) -> Vec<String> {
    let mut spaced = String::new();
    for c in line.chars() {
        if "{}(),!<>".contains(c) {
            spaced.push(' ');
            spaced.push(c);
            spaced.push(' ');
        } else {
            spaced.push(c);
        }
    }
    spaced.split_whitespace().map(str::to_string).collect()
}

struct Words {
    w: Vec<String>,
    i: usize,
    line: String,
}

impl Words {
    fn new(line: &str) -> Words {
        // Quoted words (labels, file names) are nothing the modelled rules contain.
        assert!(
            !line.contains('"'),
            "the model does not read quoted words: {line}"
        );
        Words {
            w: words(line),
            i: 0,
            line: line.to_string(),
        }
    }
    fn peek(&self) -> Option<&str> {
        self.w.get(self.i).map(String::as_str)
    }
    fn next(&mut self) -> String {
        let w = self
            .w
            .get(self.i)
            .unwrap_or_else(|| panic!("rule ends early: {}", self.line))
            .clone();
        self.i += 1;
        w
    }
    fn eat(&mut self, w: &str) -> bool {
        if self.peek() == Some(w) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, w: &str) {
        assert!(self.eat(w), "expected {w:?} in {}", self.line);
    }
    /// One item or a `{ a, b }` list of items (commas optional, as in pf.conf(5)).
    fn list<T>(&mut self, mut item: impl FnMut(&mut Words) -> T) -> Vec<T> {
        if self.eat("{") {
            let mut v = Vec::new();
            while !self.eat("}") {
                if self.eat(",") {
                    continue;
                }
                v.push(item(self));
            }
            assert!(!v.is_empty(), "empty list in {}", self.line);
            v
        } else {
            vec![item(self)]
        }
    }
    fn proto(&mut self) -> String {
        let p = self.next();
        assert!(
            matches!(p.as_str(), "tcp" | "udp" | "icmp" | "icmp6"),
            "the model does not know protocol {p:?} in {}",
            self.line
        );
        p
    }
    fn port(&mut self) -> u16 {
        let w = self.next();
        match w.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => panic!(
                "the model knows only port numbers, not {w:?}, in {}",
                self.line
            ),
        }
    }
    fn table_name(&mut self) -> String {
        let name = self.next();
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "not a table name: {name:?} in {}",
            self.line
        );
        self.expect(">");
        name
    }
    /// An address or prefix of either family.
    fn net(&mut self) -> (IpAddr, u8) {
        let w = self.next();
        let (addr, bits) = match w.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (w.as_str(), None),
        };
        let addr: IpAddr = addr
            .parse()
            .unwrap_or_else(|_| panic!("not an address the model knows: {w:?} in {}", self.line));
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = bits.map_or(max, |b| {
            b.parse()
                .ok()
                .filter(|b| *b <= max)
                .unwrap_or_else(|| panic!("bad prefix length in {w:?}: {}", self.line))
        });
        (addr, bits)
    }
    fn host(&mut self) -> Host {
        if self.eat("!") {
            return Host::Not(Box::new(self.host()));
        }
        if self.eat("(") {
            let name = self.next();
            self.expect(")");
            return Host::Dynamic(name);
        }
        if self.eat("<") {
            return Host::Table(self.table_name());
        }
        if self.eat("any") {
            return Host::Any;
        }
        let (addr, bits) = self.net();
        Host::Net(addr, bits)
    }
}

impl Ruleset {
    pub fn parse(conf: &str) -> Ruleset {
        let mut set = Ruleset {
            rules: Vec::new(),
            tables: BTreeMap::new(),
            skip: Vec::new(),
        };
        for line in expand_macros(conf) {
            let first = line.split_whitespace().next().unwrap();
            match first {
                "pass" | "block" => set.rules.push(parse_rule(&line)),
                "table" => set.parse_table(&line),
                "set" => set.parse_set(&line),
                "scrub" | "nat" | "rdr" | "rdr-anchor" | "nat-anchor" | "load" => {}
                other => panic!("the model does not know {other:?}: {line}"),
            }
        }
        set
    }

    fn parse_set(&mut self, line: &str) {
        let mut w = Words::new(line);
        w.expect("set");
        assert!(
            w.eat("skip"),
            "the model knows only `set skip on`, not {line}"
        );
        w.expect("on");
        let ifs = w.list(Words::next);
        assert!(w.peek().is_none(), "trailing words in {line}");
        self.skip.extend(ifs);
    }

    fn parse_table(&mut self, line: &str) {
        let mut w = Words::new(line);
        w.expect("table");
        w.expect("<");
        let name = w.table_name();
        let mut entries = Vec::new();
        while let Some(word) = w.peek() {
            match word {
                "persist" | "const" | "counters" => w.i += 1,
                "{" => {
                    w.i += 1;
                    while !w.eat("}") {
                        if w.eat(",") {
                            continue;
                        }
                        assert!(
                            w.peek() != Some("!"),
                            "the model does not know negated table entries: {line}"
                        );
                        entries.push(w.net());
                    }
                }
                other => panic!("the model does not know {other:?} in {line}"),
            }
        }
        assert!(
            self.tables.insert(name.clone(), entries).is_none(),
            "table <{name}> defined twice"
        );
    }

    /// `pfctl -t <name> -T replace <addresses>`: the table's contents become `entries`.
    pub fn replace_table(&mut self, name: &str, entries: &[&str]) {
        let parsed = entries
            .iter()
            .map(|e| Words::new(e).net())
            .collect::<Vec<_>>();
        self.tables.insert(name.to_string(), parsed);
    }

    /// What pf decides for `p`, and the rule that decided (`None`: no rule matched).
    pub fn decide(&self, vm: &Vm, p: &Packet) -> (Verdict, Option<String>) {
        if self.skip.iter().any(|i| i == p.iface) {
            return (Verdict::Pass, Some(format!("set skip on {}", p.iface)));
        }
        let mut verdict = (Verdict::Pass, None);
        for r in &self.rules {
            if r.matches(self, vm, p) {
                let v = if r.pass {
                    Verdict::Pass
                } else {
                    Verdict::Block
                };
                verdict = (v, Some(r.line.clone()));
                if r.quick {
                    break;
                }
            }
        }
        verdict
    }

    fn table(&self, name: &str) -> &[(IpAddr, u8)] {
        self.tables.get(name).map_or(&[], Vec::as_slice)
    }
}

fn parse_rule(line: &str) -> Rule {
    let mut w = Words::new(line);
    let pass = w.next() == "pass";
    let dir = if w.eat("in") {
        Some(Dir::In)
    } else if w.eat("out") {
        Some(Dir::Out)
    } else {
        None
    };
    let quick = w.eat("quick");
    let on = w.eat("on").then(|| {
        let i = w.next();
        assert!(
            i.bytes().all(|b| b.is_ascii_alphanumeric()),
            "the model knows only `on <one interface>`: {line}"
        );
        i
    });
    let inet6 = if w.eat("inet6") {
        Some(true)
    } else if w.eat("inet") {
        Some(false)
    } else {
        None
    };
    let protos = if w.eat("proto") {
        w.list(Words::proto)
    } else {
        Vec::new()
    };
    let mut from = vec![Host::Any];
    let mut to = vec![Host::Any];
    let mut ports = Vec::new();
    if !w.eat("all") {
        if w.eat("from") {
            from = w.list(Words::host);
            assert!(
                w.peek() != Some("port"),
                "the model does not know source ports: {line}"
            );
        }
        if w.eat("to") {
            to = w.list(Words::host);
            if w.eat("port") {
                ports = w.list(Words::port);
            }
        }
    }
    let mut icmp6_types = Vec::new();
    // What follows does not change which first packets match, except `icmp6-type`.
    while let Some(word) = w.peek().map(str::to_string) {
        match word.as_str() {
            "keep" => {
                w.i += 1;
                w.expect("state");
                if w.eat("(") {
                    // State options: only the one jrun uses.
                    w.expect("sloppy");
                    w.expect(")");
                }
            }
            "flags" => {
                w.i += 1;
                let f = w.next();
                assert!(
                    f == "any" || f == "S/SA",
                    "the model knows `flags any` and `flags S/SA`, not {f:?}: {line}"
                );
            }
            "icmp6-type" => {
                w.i += 1;
                icmp6_types = w.list(Words::next);
            }
            other => panic!("the model does not know {other:?} in {line}"),
        }
    }
    // pfctl's rule_consistent(): what it refuses to load, the model refuses to read.
    if !ports.is_empty() {
        assert!(
            !protos.is_empty() && protos.iter().all(|p| p == "tcp" || p == "udp"),
            "port only applies to tcp/udp: {line}"
        );
    }
    if !icmp6_types.is_empty() {
        assert!(
            protos == ["icmp6"] && inet6 == Some(true),
            "icmp6-type needs `inet6 proto icmp6`: {line}"
        );
    }
    Rule {
        line: line.to_string(),
        pass,
        dir,
        quick,
        on,
        inet6,
        protos,
        from,
        to,
        ports,
        icmp6_types,
    }
}

fn in_prefix(net: IpAddr, bits: u8, a: IpAddr) -> bool {
    match (net, a) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        // An address of one family never matches a packet of the other.
        _ => false,
    }
}

/// The family an address in a rule restricts the rule to (pfctl expands a rule once per
/// host and keeps only the hosts of the packet's family); `None`: both.
fn host_family_v6(h: &Host) -> Option<bool> {
    match h {
        Host::Net(n, _) => Some(n.is_ipv6()),
        Host::Not(h) => host_family_v6(h),
        Host::Any | Host::Dynamic(_) | Host::Table(_) => None,
    }
}

fn host_matches(set: &Ruleset, vm: &Vm, h: &Host, a: IpAddr) -> bool {
    match h {
        Host::Any => true,
        Host::Net(n, bits) => in_prefix(*n, *bits, a),
        Host::Dynamic(name) => vm
            .interfaces
            .iter()
            .any(|(i, addr)| (name == "self" || i == name) && *addr == a),
        Host::Table(name) => set
            .table(name)
            .iter()
            .any(|(n, bits)| in_prefix(*n, *bits, a)),
        Host::Not(h) => !host_matches(set, vm, h, a),
    }
}

impl Rule {
    fn host_matches(&self, set: &Ruleset, vm: &Vm, h: &Host, a: IpAddr) -> bool {
        host_family_v6(h).is_none_or(|v6| v6 == a.is_ipv6()) && host_matches(set, vm, h, a)
    }

    fn matches(&self, set: &Ruleset, vm: &Vm, p: &Packet) -> bool {
        assert_eq!(
            p.src.is_ipv6(),
            p.dst.is_ipv6(),
            "a packet has one family: {p:?}"
        );
        self.dir.is_none_or(|d| d == p.dir)
            && self.on.as_deref().is_none_or(|i| i == p.iface)
            && self.inet6.is_none_or(|v6| v6 == p.src.is_ipv6())
            && (self.protos.is_empty() || self.protos.iter().any(|x| x == p.proto))
            && self
                .from
                .iter()
                .any(|h| self.host_matches(set, vm, h, p.src))
            && self.to.iter().any(|h| self.host_matches(set, vm, h, p.dst))
            && (self.ports.is_empty() || self.ports.contains(&p.dport))
            && (self.icmp6_types.is_empty()
                || p.icmp6_type
                    .is_some_and(|t| self.icmp6_types.iter().any(|x| x == t)))
    }
}
