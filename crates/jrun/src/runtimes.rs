//! Which runtime a command drives: chosen by `JRUN_RUNTIME` (or `--runtime`).

#[cfg(target_os = "linux")]
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use jrun_core::exec::SystemRunner;
use jrun_core::runtime::Runtime;
use jrun_core::settings::{RuntimeKind, Settings};
#[cfg(target_os = "linux")]
use jrun_native::{NativeOptions, NativeRuntime};
use jrun_vm::qemu::DisplayMode;
use jrun_vm::runtime::{VmOptions, VmRuntime};
#[cfg(target_os = "linux")]
use miette::miette;
use miette::{IntoDiagnostic, WrapErr};

/// The runtime a command drives. The native runtime exists only on Linux (network
/// namespaces, nftables); elsewhere only the vm runtime does.
// One value per process: the size of a variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Selected {
    #[cfg(target_os = "linux")]
    Native(NativeRuntime),
    Vm(VmRuntime),
}

impl Selected {
    /// The common operations.
    pub fn runtime(&self) -> &dyn Runtime {
        match self {
            #[cfg(target_os = "linux")]
            Selected::Native(rt) => rt,
            Selected::Vm(rt) => rt,
        }
    }
}

/// A command, or a runtime, that this build or this runtime does not offer: `jrun` exits 3.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{what}")]
#[diagnostic(help("{help}"))]
pub struct Unavailable {
    pub what: String,
    pub help: String,
}

/// The runtime `JRUN_RUNTIME` (or `--runtime`) names.
pub fn select(settings: &Settings) -> miette::Result<Selected> {
    select_with(settings, DisplayMode::Headless)
}

/// [`select`], with the VM shown as `display` (`jrun start --mode`).
pub fn select_with(settings: &Settings, display: DisplayMode) -> miette::Result<Selected> {
    match settings.runtime {
        RuntimeKind::Vm => Ok(Selected::Vm(VmRuntime::new(
            settings,
            Arc::new(SystemRunner),
            VmOptions {
                display,
                mirror: format!("{}/releases/VM-IMAGES", settings.bsd_mirror),
                ssh_deadline: std::time::Duration::from_secs(settings.vm_boot_timeout_secs),
                ..VmOptions::default()
            },
        ))),
        #[cfg(target_os = "linux")]
        RuntimeKind::Native => native(settings, "").map(Selected::Native),
        #[cfg(not(target_os = "linux"))]
        RuntimeKind::Native => Err(native_unavailable()),
    }
}

/// The native runtime is Linux's own (network namespaces, nftables, netlink).
#[cfg(not(target_os = "linux"))]
pub fn native_unavailable() -> miette::Report {
    miette::Report::new(Unavailable {
        what: format!(
            "the native runtime runs only on Linux; this is {}",
            std::env::consts::OS
        ),
        help: "use the vm runtime (JRUN_RUNTIME=vm, the default): jails in a FreeBSD VM".into(),
    })
}

/// Reads the settings (environment and `./.env`).
pub fn settings() -> miette::Result<Settings> {
    Settings::load()
        .into_diagnostic()
        .wrap_err("cannot read jrun's settings (JRUN_* variables or ./.env)")
}

/// The native runtime for these settings, or a clear error for the vm runtime, whose
/// commands are not wired to this command yet.
#[cfg(target_os = "linux")]
pub fn native(settings: &Settings, command: &str) -> miette::Result<NativeRuntime> {
    if settings.runtime == RuntimeKind::Vm {
        return Err(miette::Report::new(Unavailable {
            what: format!("`jrun {command}` is not wired to the vm runtime yet"),
            help: "run it with JRUN_RUNTIME=native (or --runtime native) on Linux, as root".into(),
        }));
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
#[cfg(target_os = "linux")]
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

#[cfg(target_os = "linux")]
fn parse_upstream(value: &str) -> Option<SocketAddrV4> {
    value.parse::<SocketAddrV4>().ok().or_else(|| {
        value
            .parse::<Ipv4Addr>()
            .ok()
            .map(|ip| SocketAddrV4::new(ip, 53))
    })
}

#[cfg(all(test, target_os = "linux"))]
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
