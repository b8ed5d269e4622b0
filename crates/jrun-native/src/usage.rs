//! Each jail's processes, CPU time and memory, for `jrun status --live`: every process of
//! the host whose network namespace is the jail's, read from `/proc`.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;

use jrun_core::config::JailName;
use jrun_core::services::JailUsage;

use crate::names::Layout;

/// The usage of each of `jails` (a jail whose namespace is gone is left out).
pub fn jail_usage(layout: &Layout, jails: &[JailName]) -> Vec<JailUsage> {
    let mut by_inode: BTreeMap<u64, JailUsage> = BTreeMap::new();
    for j in jails {
        let path = format!("/run/netns/{}", layout.jail_ns(j));
        if let Ok(meta) = std::fs::metadata(&path) {
            by_inode.insert(
                meta.ino(),
                JailUsage {
                    jail: j.to_string(),
                    cpu_seconds: Some(0.0),
                    ..JailUsage::default()
                },
            );
        }
    }
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in procs.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Some(inode) = std::fs::read_link(format!("/proc/{pid}/ns/net"))
            .ok()
            .and_then(|l| net_inode(&l.to_string_lossy()))
        else {
            continue;
        };
        let Some(u) = by_inode.get_mut(&inode) else {
            continue;
        };
        let (Ok(stat), Ok(statm)) = (
            std::fs::read_to_string(format!("/proc/{pid}/stat")),
            std::fs::read_to_string(format!("/proc/{pid}/statm")),
        ) else {
            continue; // it exited meanwhile
        };
        u.processes += 1;
        if let (Some(total), Some(t)) = (u.cpu_seconds.as_mut(), cpu_ticks(&stat)) {
            *total += t as f64 / ticks;
        }
        u.rss_bytes += statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u64>().ok())
            .unwrap_or(0)
            * page;
    }
    let mut out: Vec<JailUsage> = by_inode.into_values().collect();
    out.sort_by(|a, b| a.jail.cmp(&b.jail));
    out
}

/// The supervisor's pid, while the instance runs.
pub fn supervisor_pid(layout: &Layout) -> Option<u32> {
    crate::instance::supervisor_pid(layout).map(|(pid, _)| pid as u32)
}

/// `net:[4026532281]` → 4026532281.
fn net_inode(link: &str) -> Option<u64> {
    link.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// utime + stime from `/proc/<pid>/stat` (fields 14 and 15; the command name, field 2, may
/// hold spaces and parentheses, so fields are counted after its last `)`).
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let stat = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 99 0 0";
        assert_eq!(cpu_ticks(stat), Some(12));
        assert_eq!(net_inode("net:[4026532281]"), Some(4026532281));
        assert_eq!(net_inode("mnt:[1]"), None);
    }

    #[test]
    fn this_process_is_counted_in_its_own_namespace() {
        // No jail: nothing is reported, whatever runs.
        let layout = Layout::new(std::path::Path::new("/nonexistent-home"));
        assert!(jail_usage(&layout, &[JailName::new("web").unwrap()]).is_empty());
    }
}
