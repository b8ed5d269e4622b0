//! Checks across jails: unique static IPs, host ports claimed once and never the VM's SSH
//! port, no dependency cycles.

use std::collections::HashMap;

use ucl::Span;

use super::convert::Sites;
use super::error::{Draft, ErrorKind};
use super::model::{Config, Proto};
use super::order::find_cycles;
use super::read::Reader;

pub(crate) fn across_jails(r: &mut Reader<'_>, config: &Config, sites: &Sites, ssh_port: u16) {
    unique_ips(r, config, sites);
    unique_host_ports(r, config, sites, ssh_port);
    no_cycles(r, config, sites);
}

fn unique_ips(r: &mut Reader<'_>, config: &Config, sites: &Sites) {
    let mut seen = HashMap::new();
    for (jail, js) in config.jails.iter().zip(&sites.jails) {
        let (Some(ip), Some(span)) = (jail.ip, js.ip) else {
            continue;
        };
        match seen.get(&ip) {
            None => {
                seen.insert(ip, (jail.name.clone(), span));
            }
            Some((first, first_span)) => r.push(
                Draft::new(
                    ErrorKind::DuplicateIp,
                    format!(
                        "jail `{}`: ip {ip} is already the address of jail `{first}`",
                        jail.name
                    ),
                )
                .at(span, "used again here")
                .at(*first_span, format!("taken by `{first}`"))
                .help("give each jail its own address, or leave `ip` out to have one assigned"),
            ),
        }
    }
}

/// Who claimed a host port first.
struct Claim {
    what: String,
    span: Option<Span>,
}

fn unique_host_ports(r: &mut Reader<'_>, config: &Config, sites: &Sites, ssh_port: u16) {
    let mut claims: HashMap<(Proto, u16), Claim> = HashMap::new();
    // The VM is reached over SSH on this host port (a tcp forward of QEMU's), so no
    // forward may take it; udp on the same number does not collide.
    claims.insert(
        (Proto::Tcp, ssh_port),
        Claim {
            what: "the VM's SSH port (JRUN_SSH_PORT)".into(),
            span: None,
        },
    );
    let base = config.base.iter().flat_map(|b| b.forwards.iter());
    let base = base.zip(&sites.base_forwards).map(|(f, span)| {
        (
            (f.proto, f.host),
            format!("base: forward `{}`", f.name),
            format!("base forward `{}`", f.name),
            *span,
        )
    });
    let jails = config.jails.iter().zip(&sites.jails).flat_map(|(j, js)| {
        j.forwards.iter().zip(&js.forwards).map(move |(f, span)| {
            (
                (f.proto, f.host),
                format!("jail `{}`: forward `{}`", j.name, f.name),
                format!("forward `{}` of jail `{}`", f.name, j.name),
                *span,
            )
        })
    });
    for (key, at, what, span) in base.chain(jails) {
        match claims.get(&key) {
            None => {
                claims.insert(
                    key,
                    Claim {
                        what,
                        span: Some(span),
                    },
                );
            }
            Some(first) => {
                let (proto, port) = key;
                let mut d = Draft::new(
                    ErrorKind::PortConflict,
                    format!(
                        "{at}: host port {proto} {port} is already taken by {}",
                        first.what
                    ),
                )
                .at(span, "claimed again here");
                d = match first.span {
                    Some(s) => d
                        .at(s, "first claimed here")
                        .help("each host port can forward to one place; pick a free port"),
                    None => d.help(format!(
                        "jrun reaches the VM through host port {port}; pick another port, or set JRUN_SSH_PORT to move SSH"
                    )),
                };
                r.push(d);
            }
        }
    }
}

fn no_cycles(r: &mut Reader<'_>, config: &Config, sites: &Sites) {
    for cycle in find_cycles(config) {
        let names: Vec<&str> = cycle
            .iter()
            .map(|&i| config.jails[i].name.as_str())
            .collect();
        let mut d = Draft::new(
            ErrorKind::Cycle,
            format!("dependency cycle: {}", names.join(" -> ")),
        );
        for pair in cycle.windows(2) {
            let (from, to) = (&config.jails[pair[0]], &config.jails[pair[1]]);
            let js = &sites.jails[pair[0]];
            let span = if from.base.as_ref() == Some(&to.name) {
                js.base
            } else {
                from.depends
                    .iter()
                    .position(|d| d == &to.name)
                    .map(|p| js.depends[p])
            };
            if let Some(span) = span {
                d = d.at(span, format!("`{}` needs `{}`", from.name, to.name));
            }
        }
        r.push(d.help("a jail cannot wait for itself; remove one of these dependencies"));
    }
}
