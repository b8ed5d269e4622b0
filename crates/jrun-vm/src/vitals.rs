//! The guest's side of `jrun status`: its disk and memory (the vitals line), and each
//! jail's processes, CPU and memory (`status --live`). One SSH round trip each, running a
//! fixed script (nothing from a config reaches it).

use std::collections::BTreeMap;

use jrun_core::services::{JailUsage, Vitals};

use crate::runtime::{VmError, VmRuntime};

/// `df -k /` (the root filesystem in KiB), a separator, then the physical and usable
/// memory in bytes.
const VITALS_SH: &str = "df -k /; echo --; sysctl -n hw.physmem hw.usermem";
/// Running jails (`jid name`), a separator, then every process's jail id, CPU % and
/// resident KiB.
const USAGE_SH: &str = "jls jid name; echo --; ps -ax -o jid=,pcpu=,rss=";

impl VmRuntime {
    /// The VM's vitals: the process and SSH port from the host, disk and memory from the
    /// guest (left out when it does not answer).
    pub fn vitals(&self, since: Option<u64>) -> Vitals {
        let mut v = Vitals {
            pid: self.process().map(|p| p.pid as u32),
            ssh: Some(format!("127.0.0.1:{}", self.settings().ssh_port)),
            uptime_secs: since.map(|s| now_secs().saturating_sub(s)),
            ..Vitals::default()
        };
        if v.pid.is_some() {
            if let Ok(out) = self.run_in_guest_ok(&sh(VITALS_SH)) {
                parse_vitals(&out, &mut v);
            }
        }
        v
    }

    /// Each running jail's processes, CPU and memory.
    pub fn jail_usage(&self) -> Result<Vec<JailUsage>, VmError> {
        Ok(parse_usage(&self.run_in_guest_ok(&sh(USAGE_SH))?))
    }
}

fn now_secs() -> u64 {
    jrun_core::services::now_ms() / 1000
}

fn sh(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

fn parse_vitals(out: &str, v: &mut Vitals) {
    let (df, mem) = out.split_once("--\n").unwrap_or((out, ""));
    // After the header, the three numbers before the `NN%` column are the size, used and
    // available KiB, whether or not a long device name took a line of its own.
    let tokens: Vec<&str> = df.lines().skip(1).flat_map(str::split_whitespace).collect();
    if let Some(pct) = tokens.iter().position(|t| {
        t.strip_suffix('%')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }) {
        let kib = |i: usize| tokens.get(i)?.parse::<u64>().ok().map(|k| k * 1024);
        if pct >= 3 {
            v.disk_total_bytes = kib(pct - 3);
            v.disk_used_bytes = kib(pct - 2);
        }
    }
    let mut mem = mem.lines();
    let physmem = mem.next().and_then(|l| l.trim().parse::<u64>().ok());
    let usermem = mem.next().and_then(|l| l.trim().parse::<u64>().ok());
    v.memory_total_bytes = physmem;
    v.memory_used_bytes = physmem.zip(usermem).map(|(p, u)| p.saturating_sub(u));
}

fn parse_usage(out: &str) -> Vec<JailUsage> {
    let (jls, ps) = out.split_once("\n--\n").unwrap_or((out, ""));
    let mut by_jid: BTreeMap<u32, JailUsage> = BTreeMap::new();
    for line in jls.lines() {
        let mut f = line.split_whitespace();
        if let (Some(Ok(jid)), Some(name)) = (f.next().map(str::parse::<u32>), f.next()) {
            by_jid.insert(
                jid,
                JailUsage {
                    jail: name.to_string(),
                    cpu_percent: Some(0.0),
                    ..JailUsage::default()
                },
            );
        }
    }
    for line in ps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [jid, cpu, rss] = f[..] else { continue };
        let Some(u) = jid.parse::<u32>().ok().and_then(|j| by_jid.get_mut(&j)) else {
            continue;
        };
        u.processes += 1;
        if let (Some(total), Ok(c)) = (u.cpu_percent.as_mut(), cpu.parse::<f64>()) {
            *total += c;
        }
        u.rss_bytes += rss.parse::<u64>().unwrap_or(0) * 1024;
    }
    let mut out: Vec<JailUsage> = by_jid.into_values().collect();
    out.sort_by(|a, b| a.jail.cmp(&b.jail));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vitals_come_from_df_and_sysctl() {
        let mut v = Vitals::default();
        parse_vitals(
            "Filesystem 1024-blocks Used Avail Capacity Mounted on\nzroot/ROOT/default 19000000 2500000 16500000 13% /\n--\n4269801472\n3865174016\n",
            &mut v,
        );
        assert_eq!(v.disk_total_bytes, Some(19_000_000 * 1024));
        assert_eq!(v.disk_used_bytes, Some(2_500_000 * 1024));
        assert_eq!(v.memory_total_bytes, Some(4_269_801_472));
        assert_eq!(v.memory_used_bytes, Some(4_269_801_472 - 3_865_174_016));
        // A long device name on a line of its own (busybox), and no memory figures.
        let mut v = Vitals::default();
        parse_vitals(
            "Filesystem 1K-blocks Used Available Use% Mounted on\n/dev/disk/by-label/a-very-long-name\n 253871 100 253771 1% /\n--\n",
            &mut v,
        );
        assert_eq!(v.disk_total_bytes, Some(253_871 * 1024));
        assert_eq!(v.memory_total_bytes, None);
        // A guest that answers nothing leaves them unknown.
        let mut v = Vitals::default();
        parse_vitals("", &mut v);
        assert_eq!(v, Vitals::default());
    }

    #[test]
    fn usage_sums_each_jails_processes_and_skips_the_vms_own() {
        let out = "1 web\n2 db\n--\n    0  0.0  1234\n    1  1.5  2048\n    1  0.5  1024\n    2 10.0 40960\n";
        let u = parse_usage(out);
        assert_eq!(u.len(), 2);
        assert_eq!(u[0].jail, "db");
        assert_eq!((u[0].processes, u[0].rss_bytes), (1, 40960 * 1024));
        assert_eq!(u[1].jail, "web");
        assert_eq!(u[1].processes, 2);
        assert_eq!(u[1].cpu_percent, Some(2.0));
        assert_eq!(u[1].rss_bytes, 3072 * 1024);
    }
}
