//! The plan for humans: grouped by jail, one line per action with its reason, and a
//! summary line.

use std::collections::BTreeMap;
use std::fmt::{self, Display, Write as _};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::model::{Op, Plan, Reason, VmOp};
use crate::config::Proto;
use crate::net::Redirect;

/// How many jails each kind of change touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub recreate: usize,
    pub change: usize,
    pub remove: usize,
    pub unchanged: usize,
    /// VM-level actions (base setup, shares, base forwards).
    pub vm_actions: usize,
}

impl Plan {
    /// Counts per kind of change.
    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            remove: self.removals.len(),
            vm_actions: self.vm.actions.len(),
            ..Summary::default()
        };
        for jail in &self.jails {
            match jail.actions.first().map(|a| &a.op) {
                None => s.unchanged += 1,
                Some(Op::Create) => s.create += 1,
                Some(Op::Recreate) => s.recreate += 1,
                Some(_) => s.change += 1,
            }
        }
        s
    }

    /// The plan as text for a terminal; ends with a newline.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        if self.is_empty() {
            let n = self.jails.len();
            let jails = if n == 1 { "jail" } else { "jails" };
            let _ = writeln!(out, "Nothing to do: {n} {jails} already match the config.");
            self.render_untouched(&mut out);
            return out;
        }
        let mut groups: Vec<(String, Vec<Line>)> = Vec::new();
        if !self.vm.actions.is_empty() {
            let lines = self
                .vm
                .actions
                .iter()
                .map(|a| ('~', a.op.to_string(), a.reason.to_string()))
                .collect();
            groups.push(("vm".into(), lines));
        }
        for r in &self.removals {
            let lines = vec![('-', "remove".into(), r.reason.to_string())];
            groups.push((format!("jail {} ({})", r.name, r.ip), lines));
        }
        for jail in self.jails.iter().filter(|j| !j.actions.is_empty()) {
            let lines = jail
                .actions
                .iter()
                .map(|a| (symbol(&a.op), a.op.to_string(), a.reason.to_string()))
                .collect();
            groups.push((format!("jail {} ({})", jail.jail.name, jail.ip), lines));
        }
        let width = groups
            .iter()
            .flat_map(|(_, lines)| lines.iter().map(|(_, op, _)| op.len()))
            .max()
            .unwrap_or(0);
        for (title, lines) in &groups {
            let _ = writeln!(out, "{title}");
            for (sym, op, reason) in lines {
                let _ = writeln!(out, "  {sym} {op:<width$}  # {reason}");
            }
        }
        if !self.forwards.is_empty() {
            let _ = writeln!(
                out,
                "forwards: {} to add, {} to remove",
                self.forwards.added.len(),
                self.forwards.removed.len()
            );
        }
        if self.dns_changed {
            let _ = writeln!(
                out,
                "dns: {} records ({} local, {} remote)",
                self.dns.len(),
                self.dns.local().count(),
                self.dns.peers().count()
            );
        }
        self.render_untouched(&mut out);
        let _ = writeln!(out, "{}", self.summary());
        out
    }

    /// One line per group of recorded jails the plan leaves alone, by the file that
    /// deployed them; and the base, when another file applied it.
    fn render_untouched(&self, out: &mut String) {
        let mut groups: BTreeMap<Option<&Path>, Vec<&str>> = BTreeMap::new();
        for u in &self.untouched {
            groups
                .entry(u.file.as_deref())
                .or_default()
                .push(u.name.as_str());
        }
        let whence = |file: Option<&Path>| match file {
            Some(f) if Some(f) == self.file.as_deref() => "not named in this run".to_string(),
            Some(f) => format!("from {}", f.display()),
            None => "no config file recorded".to_string(),
        };
        for (file, names) in &groups {
            let _ = writeln!(out, "untouched: {} ({})", names.join(", "), whence(*file));
        }
        let base_elsewhere =
            self.file.is_some() && self.base.is_some() && self.base_file != self.file;
        if base_elsewhere {
            let _ = writeln!(
                out,
                "untouched: base ({})",
                whence(self.base_file.as_deref())
            );
        }
    }
}

/// One printed action: its symbol, what and why.
type Line = (char, String, String);

fn symbol(op: &Op) -> char {
    match op {
        Op::Create | Op::AddForward(_) | Op::AddMount(_) | Op::StartExec(_) => '+',
        Op::RemoveForward(_) | Op::RemoveMount(_) | Op::StopExec(_) => '-',
        Op::Recreate => '!',
        Op::RunSetup | Op::RestartExec(_) | Op::SetFirewall | Op::Record => '~',
    }
}

impl Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Plan: {} to create, {} to recreate, {} to change, {} to remove, {} unchanged",
            self.create, self.recreate, self.change, self.remove, self.unchanged
        )?;
        match self.vm_actions {
            0 => {}
            1 => f.write_str("; 1 VM change")?,
            n => write!(f, "; {n} VM changes")?,
        }
        Ok(())
    }
}

fn redirect(r: &Redirect) -> String {
    format!(
        "{}/{} -> {}:{}",
        r.proto, r.host_port, r.jail_ip, r.jail_port
    )
}

impl Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Create => f.write_str("create"),
            Op::Recreate => f.write_str("recreate"),
            Op::AddForward(r) => write!(f, "add forward {}", redirect(r)),
            Op::RemoveForward(r) => write!(f, "remove forward {}", redirect(r)),
            Op::AddMount(m) => write!(f, "mount {} at {}", m.host.display(), m.jail.display()),
            Op::RemoveMount(m) => write!(f, "unmount {}", m.jail.display()),
            Op::RunSetup => f.write_str("run setup"),
            Op::StartExec(e) => write!(f, "start {}", e.name),
            Op::StopExec(e) => write!(f, "stop {}", e.name),
            Op::RestartExec(e) => write!(f, "restart {}", e.name),
            Op::SetFirewall => f.write_str("reload firewall"),
            Op::Record => f.write_str("update record"),
        }
    }
}

impl Display for VmOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = |p: Proto, host: u16, target: u16| format!("{p}/{host} -> vm:{target}");
        match self {
            VmOp::RunSetup => f.write_str("run base setup"),
            VmOp::AddShare(m) => write!(f, "share {} at {}", m.host.display(), m.target.display()),
            VmOp::RemoveShare(m) => write!(f, "unshare {}", m.target.display()),
            VmOp::AddForward(b) => write!(f, "add forward {}", port(b.proto, b.host, b.target)),
            VmOp::RemoveForward(b) => {
                write!(f, "remove forward {}", port(b.proto, b.host, b.target))
            }
        }
    }
}

fn opt<T: Display>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "(none)".to_string(), |v| v.to_string())
}

impl Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NewJail => f.write_str("new jail"),
            Reason::NotInConfig => f.write_str("no longer in the config"),
            Reason::Provision => f.write_str("--provision"),
            Reason::IncompleteDeployment => f.write_str("its last deployment did not complete"),
            Reason::FromJailrun => {
                f.write_str("converted from Jailrun's state; not created in this instance yet")
            }
            Reason::Adopted { from: Some(file) } => write!(
                f,
                "deployed from {}, which no longer exists; this file takes it over",
                file.display()
            ),
            Reason::Adopted { from: None } => {
                f.write_str("no config file recorded for it; this file takes it over")
            }
            Reason::ReleaseChanged { from, to } => {
                write!(f, "release changed from {} to {}", opt(from), opt(to))
            }
            Reason::BaseChanged { from, to } => {
                write!(f, "base changed from {} to {}", opt(from), opt(to))
            }
            Reason::IpChanged { from, to } => write!(f, "ip changed from {from} to {to}"),
            Reason::IpTaken { from, to, by } => {
                write!(f, "{from} is now the static ip of {by}; moves to {to}")
            }
            Reason::ForwardAdded { name } => write!(f, "forward {name:?} added"),
            Reason::ForwardRemoved { name } => write!(f, "forward {name:?} removed"),
            Reason::ForwardChanged { name } => write!(f, "forward {name:?} changed"),
            Reason::MountAdded { name } => write!(f, "mount {name:?} added"),
            Reason::MountRemoved { name } => write!(f, "mount {name:?} removed"),
            Reason::MountChanged { name } => write!(f, "mount {name:?} changed"),
            Reason::ExecAdded { name } => write!(f, "exec {name:?} added"),
            Reason::ExecRemoved { name } => write!(f, "exec {name:?} removed"),
            Reason::ExecChanged { name } => write!(f, "exec {name:?} changed"),
            Reason::SetupChanged => f.write_str("setup changed"),
            Reason::DependsChanged => f.write_str("depends changed"),
            Reason::MeshAllowChanged => f.write_str("mesh allow changed"),
            Reason::OrderChanged => f.write_str("declaration order changed"),
            Reason::NewBase => f.write_str("base not applied yet"),
            Reason::ShareAdded { name } => write!(f, "base mount {name:?} added"),
            Reason::ShareRemoved { name } => write!(f, "base mount {name:?} removed"),
            Reason::ShareChanged { name } => write!(f, "base mount {name:?} changed"),
        }
    }
}
