//! `jrun status [jail] [--show ip|services|mounts|all] [--tree] [--live] [--json]`: the
//! instance (running or not, since when, its vitals), a table of jails (state up / failed /
//! missing, IP, forwards, mounts, mesh address) and their services (state, pid, restarts,
//! last health check). `status <jail>` shows one jail in full, with the last lines of each
//! service's log; `--tree` draws the jails by what they depend on; `--live` refreshes a
//! view of each jail's processes, CPU and memory.

mod live;
mod tree;

use std::process::ExitCode;

use jrun_core::config::JailName;
use jrun_core::net::redirects_for;
use jrun_core::runtime::Runtime;
use jrun_core::state::{JailState, StateStore};
use miette::{miette, IntoDiagnostic};
use serde::Serialize;

use jrun_core::services::{log_tail, ChildStatus, ServiceStatus, Vitals};

use crate::runtimes;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Show {
    /// Addresses: jail IP and mesh address.
    Ip,
    /// Services: state, pid, restarts, last health check.
    Services,
    /// Mounts: host folder → path in the jail.
    Mounts,
    /// Everything.
    All,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show one jail in full.
    pub jail: Option<String>,
    /// Extra columns to show; repeat it for several (`-s ip -s services`).
    #[arg(short = 's', long, value_enum)]
    pub show: Vec<Show>,
    /// Print JSON for scripts (with `--live`: one JSON object per refresh, a line each).
    #[arg(long)]
    pub json: bool,
    /// Draw the jails as a tree: each under the jails it depends on (`depends`, `base`).
    #[arg(long)]
    pub tree: bool,
    /// Refresh a view of each jail's processes, CPU and memory until Ctrl-C.
    #[arg(long)]
    pub live: bool,
    /// Time between refreshes of `--live`, e.g. `2s`, `500ms`.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_interval, requires = "live")]
    pub interval: std::time::Duration,
    /// Stop `--live` after this many refreshes.
    #[arg(long, value_name = "N", requires = "live")]
    pub count: Option<u32>,
}

fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    match jrun_core::config::parse_duration(text) {
        Some(d) if d >= std::time::Duration::from_millis(100) => Ok(d),
        Some(_) => Err("refresh at most every 100ms".into()),
        None => Err(format!("{text:?} is not a duration (write e.g. 2s, 500ms)")),
    }
}

#[derive(Debug, Serialize)]
struct Report {
    instance: Instance,
    jails: Vec<JailRow>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    processes: Vec<ChildStatus>,
    /// The jails' `exec` services (native runtime, instance running).
    services: Vec<ServiceRow>,
    /// Why the supervisor did not answer (its processes and services are then unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    supervisor_error: Option<String>,
}

#[derive(Debug, Serialize)]
struct ServiceRow {
    #[serde(flatten)]
    status: ServiceStatus,
    /// The last lines of its log (`status <jail>` only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    log_tail: Vec<String>,
}

/// Log lines `status <jail>` shows per service.
const TAIL_LINES: usize = 10;

#[derive(Debug, Serialize)]
struct Instance {
    running: bool,
    since: Option<u64>,
    namespace: Option<String>,
    /// Pid, SSH, uptime, disk and memory, as far as the runtime knows them (running only).
    #[serde(skip_serializing_if = "Option::is_none")]
    vitals: Option<Vitals>,
}

#[derive(Debug, Serialize)]
struct JailRow {
    name: String,
    /// `up`, `unrecorded` (it runs, but the state file does not know it), `deploying` (a
    /// `jrun up` is at work on it), `failed` (its last deployment did
    /// not finish), `pending` (converted from
    /// Jailrun's state, not yet created by jrun) or `missing` (recorded as deployed, but
    /// its network is gone: the next `up` rebuilds it).
    state: &'static str,
    ip: std::net::Ipv4Addr,
    forwards: Vec<String>,
    /// `host folder→path in the jail`.
    mounts: Vec<String>,
    /// What it depends on: its `base` first, then `depends`.
    depends: Vec<String>,
    /// The config file that deployed it (none: converted from Jailrun's state, or recorded
    /// by an older jrun, until a file lists it).
    file: Option<std::path::PathBuf>,
    mesh_address: Option<String>,
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let settings = runtimes::settings()?;
    let selected = runtimes::select(&settings)?;
    if args.live {
        return live::run(&selected, &settings, &args);
    }
    let rt = selected.runtime();
    let inst = rt.instance().into_diagnostic()?;
    let state = match StateStore::new(&settings.home).read() {
        Ok(state) => state,
        Err(e) => {
            // What the machine says still helps: whether the instance runs.
            println!(
                "instance: {}",
                if inst.running {
                    "running (the jails are unknown: the state file cannot be read)"
                } else {
                    "not running"
                }
            );
            return Err(e).into_diagnostic();
        }
    };
    let present = if inst.running {
        rt.jails_present().into_diagnostic()?
    } else {
        Default::default()
    };
    let only = match &args.jail {
        Some(j) => {
            let name = JailName::new(j.as_str()).into_diagnostic()?;
            if !state.jails.contains_key(&name) {
                return Err(miette!(
                    help = "`jrun status` lists the jails",
                    "there is no jail named {j:?}"
                ));
            }
            Some(name)
        }
        None => None,
    };
    // A `jrun up` at work: its jails not yet deployed are being deployed, not failed.
    let deploying = state.deploying.is_some_and(pid_alive);
    let jails: Vec<JailRow> = state
        .jails
        .values()
        .filter(|j| match &only {
            Some(o) => *o == j.name,
            None => true,
        })
        .map(|j| row(rt, j, present.contains(&j.name), deploying))
        .collect();
    // Jails that run but that the state does not record (a lost state file): shown, so
    // nothing runs unseen; the next `up` of their file adopts them at their address.
    let mut jails = jails;
    if only.is_none() {
        for name in present.iter().filter(|n| !state.jails.contains_key(*n)) {
            let seen = rt.observe_jail(name).ok();
            if let Some(ip) = seen.as_ref().and_then(|o| o.ip) {
                jails.push(JailRow {
                    name: name.to_string(),
                    state: "unrecorded",
                    ip,
                    forwards: vec![],
                    mounts: vec![],
                    depends: vec![],
                    file: None,
                    mesh_address: seen.and_then(|o| o.mesh_address).map(|a| a.to_string()),
                });
            }
        }
    }
    let wants_services = args
        .show
        .iter()
        .any(|s| matches!(s, Show::Services | Show::All));
    let mut supervisor_error = None;
    let processes = if inst.running && (wants_services || args.json) {
        answered(selected.processes(), &mut supervisor_error)
    } else {
        Vec::new()
    };
    let services: Vec<ServiceStatus> = if inst.running {
        answered(selected.services(), &mut supervisor_error)
    } else {
        Vec::new()
    };
    let report = Report {
        instance: Instance {
            running: inst.running,
            since: inst.since,
            namespace: inst.detail,
            vitals: inst.running.then(|| selected.vitals(inst.since)),
        },
        jails,
        processes,
        services: services
            .into_iter()
            .filter(|s| only.as_ref().is_none_or(|o| o.as_str() == s.jail))
            .map(|status| ServiceRow {
                log_tail: if only.is_some() {
                    log_tail(&status.log, TAIL_LINES)
                } else {
                    Vec::new()
                },
                status,
            })
            .collect(),
        supervisor_error,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).into_diagnostic()?
        );
    } else {
        let cols = Columns {
            mesh: args.show.iter().any(|s| matches!(s, Show::Ip | Show::All)) || only.is_some(),
            mounts: args
                .show
                .iter()
                .any(|s| matches!(s, Show::Mounts | Show::All))
                || only.is_some(),
            services: wants_services || only.is_some(),
        };
        if args.tree {
            print!("{}", render_instance(&report));
            print!("{}", tree::render(&report.jails, &report.services, &cols));
        } else {
            print!("{}", render(&report, &cols));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The supervisor's answer, or nothing with the reason kept in `error`.
fn answered<T>(r: Result<Vec<T>, String>, error: &mut Option<String>) -> Vec<T> {
    r.unwrap_or_else(|e| {
        *error = Some(e);
        Vec::new()
    })
}

/// Whether process `pid` exists (signal 0 reaches it, or it is another user's).
fn pid_alive(pid: u32) -> bool {
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None) {
        Ok(()) => true,
        Err(e) => e == nix::errno::Errno::EPERM,
    }
}

fn row(rt: &dyn Runtime, j: &JailState, present: bool, deploying: bool) -> JailRow {
    let state = match (j.deployed, present) {
        (true, true) => "up",
        (false, _) if deploying => "deploying",
        // Converted from Jailrun's state: the next `up` of its file creates it.
        (false, _) if j.from_jailrun => "pending",
        (false, _) => "failed",
        (true, false) => "missing",
    };
    JailRow {
        name: j.name.to_string(),
        state,
        ip: j.ip,
        forwards: redirects_for(&j.name, j.ip, &j.forwards)
            .iter()
            .map(|r| format!("{}/{}→{}", r.proto, r.host_port, r.jail_port))
            .collect(),
        mounts: j
            .mounts
            .iter()
            .map(|m| format!("{}→{}", m.host.display(), m.jail.display()))
            .collect(),
        depends: j
            .base
            .iter()
            .chain(j.depends.iter())
            .map(|d| d.to_string())
            .collect(),
        file: j.file.clone(),
        mesh_address: rt
            .observe_jail(&j.name)
            .ok()
            .and_then(|o| o.mesh_address)
            .map(|a| a.to_string()),
    }
}

/// Which optional parts `status` shows.
pub(super) struct Columns {
    pub mesh: bool,
    pub mounts: bool,
    pub services: bool,
}

/// The instance line, its vitals and a word from the supervisor when it did not answer.
fn render_instance(report: &Report) -> String {
    let mut out = String::new();
    let i = &report.instance;
    if i.running {
        out.push_str(&format!(
            "instance: running since {} ({})\n",
            i.since
                .map_or_else(|| "?".into(), crate::time_fmt::utc_seconds),
            i.namespace.as_deref().unwrap_or("")
        ));
        if let Some(v) = i.vitals.as_ref().map(vitals_line).filter(|l| !l.is_empty()) {
            out.push_str(&format!("          {v}\n"));
        }
    } else {
        out.push_str("instance: not running (`jrun start` starts it)\n");
    }
    if let Some(e) = &report.supervisor_error {
        out.push_str(&format!(
            "supervisor: did not answer ({e}); services and processes unknown. `jrun stop` then `jrun start` restarts the instance\n"
        ));
    }
    out
}

/// `pid 4242 · ssh 127.0.0.1:2222 · up 2h 03m · disk 2.4G of 18.1G · memory 410M of 4.0G`,
/// leaving out what is unknown.
fn vitals_line(v: &Vitals) -> String {
    let size = |b: u64| runtimes::human_size(b);
    let of = |used: Option<u64>, total: Option<u64>| match (used, total) {
        (Some(u), Some(t)) => Some(format!("{} of {}", size(u), size(t))),
        (None, Some(t)) => Some(size(t)),
        _ => None,
    };
    [
        v.pid.map(|p| format!("pid {p}")),
        v.ssh.as_ref().map(|s| format!("ssh {s}")),
        v.uptime_secs.map(|s| format!("up {}", uptime(s))),
        of(v.disk_used_bytes, v.disk_total_bytes).map(|d| format!("disk {d}")),
        of(v.memory_used_bytes, v.memory_total_bytes).map(|m| format!("memory {m}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" · ")
}

/// `45s`, `12m 05s`, `3h 07m`, `2d 04h`.
fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s:02}s"),
        (0, _, _) => format!("{h}h {m:02}m"),
        _ => format!("{d}d {h:02}h"),
    }
}

fn render(report: &Report, cols: &Columns) -> String {
    let mut out = render_instance(report);
    if report.jails.is_empty() {
        out.push_str("no jails (`jrun up <config>` deploys them)\n");
    } else {
        out.push_str(&format!(
            "{:<20} {:<8} {:<15} {:<24}",
            "JAIL", "STATE", "IP", "FORWARDS"
        ));
        if cols.mounts {
            out.push_str(&format!(" {:<32}", "MOUNTS"));
        }
        if cols.mesh {
            out.push_str(" MESH ADDRESS");
        }
        out.push('\n');
        for j in &report.jails {
            let fwd = if j.forwards.is_empty() {
                "-".to_string()
            } else {
                j.forwards.join(",")
            };
            out.push_str(&format!(
                "{:<20} {:<8} {:<15} {:<24}",
                j.name,
                j.state,
                j.ip.to_string(),
                fwd
            ));
            if cols.mounts {
                let m = if j.mounts.is_empty() {
                    "-".to_string()
                } else {
                    j.mounts.join(",")
                };
                out.push_str(&format!(" {m:<32}"));
            }
            if cols.mesh {
                out.push(' ');
                out.push_str(j.mesh_address.as_deref().unwrap_or("-"));
            }
            out.push('\n');
        }
    }
    if cols.services {
        out.push_str(&render_services(&report.services));
    }
    if cols.services && !report.processes.is_empty() {
        out.push_str(&format!("\n{:<24} {:<8} RESTARTS\n", "PROCESS", "PID"));
        for c in &report.processes {
            let pid = c.pid.map_or_else(|| "-".to_string(), |p| p.to_string());
            out.push_str(&format!("{:<24} {:<8} {}\n", c.name, pid, c.restarts));
        }
    }
    out
}

/// The services table, then each service's log tail when there is one.
fn render_services(services: &[ServiceRow]) -> String {
    let mut out = String::new();
    if services.is_empty() {
        out.push_str("\nno services\n");
        return out;
    }
    out.push_str(&format!(
        "\n{:<20} {:<16} {:<11} {:<8} {:<9} HEALTH\n",
        "JAIL", "SERVICE", "STATE", "PID", "RESTARTS"
    ));
    for row in services {
        let s = &row.status;
        out.push_str(&format!(
            "{:<20} {:<16} {:<11} {:<8} {:<9} {}\n",
            s.jail,
            s.name,
            s.state.to_string(),
            s.pid.map_or_else(|| "-".to_string(), |p| p.to_string()),
            s.restarts,
            s.health.as_deref().unwrap_or("-")
        ));
        if let Some(e) = &s.error {
            out.push_str(&format!("  failed: {e}\n"));
        }
    }
    for row in services.iter().filter(|r| !r.log_tail.is_empty()) {
        out.push_str(&format!(
            "\n--- {}/{} ({}) ---\n",
            row.status.jail,
            row.status.name,
            row.status.log.display()
        ));
        for line in &row.log_tail {
            // A service's output is the jail's: its escape sequences are shown, not run.
            out.push_str(&jrun_core::text::printable(line));
            out.push('\n');
        }
    }
    out
}
