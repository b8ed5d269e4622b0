//! Which runtime a command drives: chosen by `JRUN_RUNTIME` (or `--runtime`).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use jrun_core::exec::SystemRunner;
use jrun_core::runtime::Runtime;
use jrun_core::settings::{RuntimeKind, Settings};
use jrun_native::{NativeOptions, NativeRuntime};
use jrun_vm::runtime::{VmOptions, VmRuntime};
use miette::{miette, IntoDiagnostic, WrapErr};

/// The runtime a command drives.
pub enum Selected {
    Native(NativeRuntime),
    Vm(VmRuntime),
}

impl Selected {
    /// The common operations.
    pub fn runtime(&self) -> &dyn Runtime {
        match self {
            Selected::Native(rt) => rt,
            Selected::Vm(rt) => rt,
        }
    }
}

/// The runtime `JRUN_RUNTIME` (or `--runtime`) names.
pub fn select(settings: &Settings) -> miette::Result<Selected> {
    match settings.runtime {
        RuntimeKind::Vm => Ok(Selected::Vm(VmRuntime::new(
            settings,
            Arc::new(SystemRunner),
            VmOptions::default(),
        ))),
        RuntimeKind::Native => native(settings, "").map(Selected::Native),
    }
}

/// Reads the settings (environment and `./.env`).
pub fn settings() -> miette::Result<Settings> {
    Settings::load()
        .into_diagnostic()
        .wrap_err("cannot read jrun's settings (JRUN_* variables or ./.env)")
}

/// The native runtime for these settings, or a clear error for the vm runtime, whose
/// commands are not wired to this command yet.
pub fn native(settings: &Settings, command: &str) -> miette::Result<NativeRuntime> {
    if settings.runtime == RuntimeKind::Vm {
        return Err(miette!(
            help = "run it with JRUN_RUNTIME=native (or --runtime native) on Linux, as root",
            "`jrun {command}` is not wired to the vm runtime yet"
        ));
    }
    let exe = std::env::current_exe()
        .into_diagnostic()
        .wrap_err("cannot find the jrun binary to run the supervisor")?;
    Ok(NativeRuntime::new(
        &settings.home,
        Arc::new(SystemRunner),
        NativeOptions {
            mesh: settings.mesh_network,
            relay_peer: settings.relay_peer.clone(),
            dns_upstream: dns_upstream()?,
            supervisor_argv: vec![exe.display().to_string(), "supervise".into()],
        },
    ))
}

/// `JRUN_DNS_UPSTREAM=<ip>[:port]`: where the resolver forwards names outside `jrun.`.
fn dns_upstream() -> miette::Result<Option<SocketAddrV4>> {
    let Ok(value) = std::env::var("JRUN_DNS_UPSTREAM") else {
        return Ok(None);
    };
    if value.is_empty() {
        return Ok(None);
    }
    parse_upstream(&value).map(Some).ok_or_else(|| {
        miette!(
            help =
                "write an IPv4 address with an optional port, e.g. 192.168.1.1 or 127.0.0.1:5353",
            "JRUN_DNS_UPSTREAM={value:?} is not valid"
        )
    })
}

fn parse_upstream(value: &str) -> Option<SocketAddrV4> {
    value.parse::<SocketAddrV4>().ok().or_else(|| {
        value
            .parse::<Ipv4Addr>()
            .ok()
            .map(|ip| SocketAddrV4::new(ip, 53))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_forms() {
        assert_eq!(
            parse_upstream("1.2.3.4"),
            Some("1.2.3.4:53".parse().unwrap())
        );
        assert_eq!(
            parse_upstream("127.0.0.1:5353"),
            Some("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(parse_upstream("dns.example"), None);
    }
}
