//! A small model of pf's filter-rule evaluation, for the subset of pf.conf(5) that jrun
//! renders, to ask what the VM's ruleset decides for a new connection. There is no pfctl on
//! this machine, so this stands in for one; it refuses any word it does not understand,
//! so a rule it cannot read fails the test instead of being skipped.
//!
//! What it models (pf.conf(5), "PACKET FILTERING"): rules are read top to bottom; the last
//! matching rule decides, except that a matching `quick` rule decides at once; a packet no
//! rule matches passes. Macros (`name = "value"`) are expanded. `nat`, `rdr`, anchors,
//! `set`, `scrub` and `load` are translation or setup, not filtering, and are skipped.
//! State is not modelled: only the first packet of a connection is asked about.
//! `(self)` is every address of every interface in [`Vm`]; `(if)` that interface's.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// The VM as pf sees it: its interfaces and their IPv4 addresses.
pub struct Vm {
    pub interfaces: Vec<(&'static str, Ipv4Addr)>,
}

impl Vm {
    /// jrun's guest: vtnet0 on QEMU's user network, bridge0 for the jails, lo0.
    pub fn jrun_guest() -> Vm {
        Vm {
            interfaces: vec![
                ("vtnet0", Ipv4Addr::new(10, 0, 2, 15)),
                ("bridge0", Ipv4Addr::new(10, 17, 89, 1)),
                ("lo0", Ipv4Addr::new(127, 0, 0, 1)),
            ],
        }
    }
}

/// The first packet of an IPv4 connection arriving on `iface`.
#[derive(Debug, Clone, Copy)]
pub struct Packet {
    pub iface: &'static str,
    pub proto: &'static str,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub dport: u16,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Verdict {
    Pass,
    Block,
}

#[derive(Debug, Clone)]
enum Host {
    Any,
    Net(Ipv4Addr, u8),
    /// `(ifname)` or `(self)`: the interface's addresses when the packet is checked.
    Dynamic(String),
    Not(Box<Host>),
}

#[derive(Debug, Clone)]
struct Rule {
    line: String,
    pass: bool,
    /// `None`: both directions.
    inbound: Option<bool>,
    quick: bool,
    on: Option<String>,
    inet6: bool,
    protos: Vec<String>,
    from: Vec<Host>,
    to: Vec<Host>,
    ports: Vec<u16>,
}

/// The filter rules of `conf`, parsed. Panics on a word outside the modelled subset.
pub struct Ruleset {
    rules: Vec<Rule>,
}

fn expand_macros(conf: &str) -> Vec<String> {
    let mut macros: BTreeMap<String, String> = BTreeMap::new();
    let mut lines = Vec::new();
    for raw in conf.lines() {
        let line = raw.split('#').next().unwrap().trim();
        if line.is_empty() {
            continue;
        }
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

/// Splits a rule into words, with `{`, `}`, `(`, `)`, `,` and `!` as words of their own.
fn words(line: &str) -> Vec<String> {
    let mut spaced = String::new();
    for c in line.chars() {
        if "{}(),!".contains(c) {
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
    /// One item or a `{ a, b }` list of items.
    fn list<T>(&mut self, mut item: impl FnMut(&mut Words) -> T) -> Vec<T> {
        if self.eat("{") {
            let mut v = Vec::new();
            while !self.eat("}") {
                self.eat(",");
                if self.peek() == Some("}") {
                    continue;
                }
                v.push(item(self));
            }
            v
        } else {
            vec![item(self)]
        }
    }
    fn host(&mut self) -> Host {
        if self.eat("!") {
            return Host::Not(Box::new(self.host()));
        }
        if self.eat("(") {
            let name = self.next();
            assert!(self.eat(")"), "unclosed ( in {}", self.line);
            return Host::Dynamic(name);
        }
        let w = self.next();
        if w == "any" {
            return Host::Any;
        }
        let (addr, bits) = match w.split_once('/') {
            Some((a, b)) => (a, b.parse().unwrap()),
            None => (w.as_str(), 32),
        };
        let addr: Ipv4Addr = addr
            .parse()
            .unwrap_or_else(|_| panic!("not an address the model knows: {w:?} in {}", self.line));
        Host::Net(addr, bits)
    }
}

impl Ruleset {
    pub fn parse(conf: &str) -> Ruleset {
        let mut rules = Vec::new();
        for line in expand_macros(conf) {
            let first = line.split_whitespace().next().unwrap();
            match first {
                "pass" | "block" => rules.push(parse_rule(&line)),
                "set" | "scrub" | "nat" | "rdr" | "rdr-anchor" | "nat-anchor" | "anchor"
                | "load" => {}
                other => panic!("the model does not know {other:?}: {line}"),
            }
        }
        Ruleset { rules }
    }

    /// What pf decides for `p`, and the rule that decided (`None`: no rule matched).
    pub fn decide(&self, vm: &Vm, p: &Packet) -> (Verdict, Option<String>) {
        let mut verdict = (Verdict::Pass, None);
        for r in &self.rules {
            if r.matches(vm, p) {
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
}

fn parse_rule(line: &str) -> Rule {
    let mut w = Words {
        w: words(line),
        i: 0,
        line: line.to_string(),
    };
    let pass = w.next() == "pass";
    let inbound = if w.eat("in") {
        Some(true)
    } else if w.eat("out") {
        Some(false)
    } else {
        None
    };
    let quick = w.eat("quick");
    let on = w.eat("on").then(|| w.next());
    let mut inet6 = false;
    if w.eat("inet6") {
        inet6 = true;
    } else {
        w.eat("inet");
    }
    let protos = if w.eat("proto") {
        w.list(|w| w.next())
    } else {
        Vec::new()
    };
    let mut from = vec![Host::Any];
    let mut to = vec![Host::Any];
    let mut ports = Vec::new();
    if !w.eat("all") {
        if w.eat("from") {
            from = w.list(Words::host);
        }
        if w.eat("to") {
            to = w.list(Words::host);
            if w.eat("port") {
                ports = w.list(|w| w.next().parse::<u16>().unwrap());
            }
        }
    }
    // What follows does not change which new connections match.
    while let Some(word) = w.peek().map(str::to_string) {
        match word.as_str() {
            "keep" | "state" | "flags" | "any" | "S/SA" => {
                w.i += 1;
            }
            "(" => {
                // State options, e.g. `(sloppy)`.
                while w.next() != ")" {}
            }
            "icmp6-type" => {
                w.i += 1;
                let _ = w.list(|w| w.next());
            }
            other => panic!("the model does not know {other:?} in {line}"),
        }
    }
    Rule {
        line: line.to_string(),
        pass,
        inbound,
        quick,
        on,
        inet6,
        protos,
        from,
        to,
        ports,
    }
}

fn host_matches(vm: &Vm, h: &Host, a: Ipv4Addr) -> bool {
    match h {
        Host::Any => true,
        Host::Net(n, bits) => {
            let mask = if *bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(*bits))
            };
            u32::from(*n) & mask == u32::from(a) & mask
        }
        Host::Dynamic(name) => vm
            .interfaces
            .iter()
            .any(|(i, addr)| (name == "self" || i == name) && *addr == a),
        Host::Not(h) => !host_matches(vm, h, a),
    }
}

impl Rule {
    fn matches(&self, vm: &Vm, p: &Packet) -> bool {
        self.inbound != Some(false)
            && self.on.as_deref().is_none_or(|i| i == p.iface)
            && !self.inet6
            && (self.protos.is_empty() || self.protos.iter().any(|x| x == p.proto))
            && self.from.iter().any(|h| host_matches(vm, h, p.src))
            && self.to.iter().any(|h| host_matches(vm, h, p.dst))
            && (self.ports.is_empty() || self.ports.contains(&p.dport))
    }
}
