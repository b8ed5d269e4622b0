//! Where jrun keeps things inside the FreeBSD guest. Built only from validated names.

use jrun_core::config::JailName;

/// The ZFS dataset under which every jail root lives.
pub const JAILS_DATASET: &str = "zroot/jrun/jails";
/// Its mountpoint.
pub const JAILS_DIR: &str = "/usr/local/jrun/jails";
/// jrun's own config folder in the VM.
pub const ETC_DIR: &str = "/usr/local/etc/jrun";
/// Where release tarballs are cached in the VM.
pub const RELEASES_DIR: &str = "/usr/local/jrun/releases";
/// Where 9p shares from the host are mounted in the VM.
pub const SHARES_DIR: &str = "/usr/local/jrun/shares";
/// The pf anchor holding the forward redirects.
pub const FORWARDS_ANCHOR: &str = "jrun/forwards";
/// The devfs ruleset number jails use (VNET defaults plus `tun` and `pf`).
pub const DEVFS_RULESET: u16 = 4919;
/// The VM's network interface on QEMU's user network.
pub const EXT_IF: &str = "vtnet0";
/// The bridge every jail's epair joins.
pub const BRIDGE_IF: &str = "bridge0";

pub fn jail_root(j: &JailName) -> String {
    format!("{JAILS_DIR}/{j}")
}

pub fn jail_dataset(j: &JailName) -> String {
    format!("{JAILS_DATASET}/{j}")
}

pub fn jail_conf(j: &JailName) -> String {
    format!("/etc/jail.conf.d/{j}.conf")
}

/// Where jail(8) writes the output of the jail's rc (`exec.consolelog`).
pub fn jail_console_log(j: &JailName) -> String {
    format!("/var/log/jail_{j}_console.log")
}

pub fn jail_fstab(j: &JailName) -> String {
    format!("{ETC_DIR}/fstab.{j}")
}

/// A path inside the jail, seen from the VM.
pub fn in_jail(j: &JailName, path: &str) -> String {
    format!("{}{path}", jail_root(j))
}

/// The epair unit of a jail: its last address octet, unique because addresses are.
pub fn epair_unit(ip: std::net::Ipv4Addr) -> u8 {
    ip.octets()[3]
}

/// The 9p mount tag of a host folder: derived from its path by a hash, so it is stable
/// whatever the order of mounts, and no user text reaches QEMU's argv or the guest.
pub fn share_tag(host: &std::path::Path) -> String {
    use sha2::{Digest, Sha512};
    let digest = Sha512::digest(host.as_os_str().as_encoded_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("jrun{hex}")
}
