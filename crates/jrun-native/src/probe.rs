//! Which addresses of the jail subnet answer on the bridge — jails or anything else
//! attached to it. A datagram to every pool address makes the kernel ARP for each; the
//! neighbour table then says who answered.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use jrun_core::exec::{Cmd, Runner};
use jrun_core::net::POOL;
use nix::sched::{setns, CloneFlags};

use crate::names::BRIDGE;

/// How long neighbours get to answer the ARP requests.
const ANSWER_WINDOW: Duration = Duration::from_millis(100);

/// Runs `f` on a thread that has entered network namespace `ns`; sockets `f` creates
/// belong to that namespace for their whole life.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let file = File::open(format!("/run/netns/{ns}"))?;
    std::thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
        f()
    })
    .join()
    .map_err(|_| std::io::Error::other("namespace thread panicked"))?
}

/// The pool addresses that answer ARP on the bridge of `vm_ns`.
pub fn addresses_in_use(runner: &dyn Runner, vm_ns: &str) -> Result<BTreeSet<Ipv4Addr>, String> {
    // Entries left by departed jails would read as answers: start from an empty table.
    runner
        .run(&Cmd::new([
            "ip", "-n", vm_ns, "neigh", "flush", "dev", BRIDGE,
        ]))
        .map_err(|e| e.to_string())?;
    in_netns(vm_ns, || {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        for last in POOL {
            // Port 9 (discard); the payload never matters, only the ARP it triggers.
            let _ = socket.send_to(b"", (Ipv4Addr::new(10, 17, 89, last), 9));
        }
        std::thread::sleep(ANSWER_WINDOW);
        Ok(())
    })
    .map_err(|e| format!("cannot probe the bridge in {vm_ns}: {e}"))?;
    let out = runner
        .run(&Cmd::new([
            "ip", "-n", vm_ns, "-4", "neigh", "show", "dev", BRIDGE,
        ]))
        .map_err(|e| e.to_string())?;
    Ok(parse_neighbours(&String::from_utf8_lossy(&out.stdout)))
}

/// Neighbours that answered: anything but INCOMPLETE or FAILED entries.
fn parse_neighbours(text: &str) -> BTreeSet<Ipv4Addr> {
    text.lines()
        .filter(|l| !l.contains("INCOMPLETE") && !l.contains("FAILED") && l.contains("lladdr"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .filter(|ip: &Ipv4Addr| jrun_core::net::in_subnet(*ip))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_answered_neighbours_count() {
        let text = "10.17.89.10 lladdr 02:00:00:00:00:01 REACHABLE\n\
                    10.17.89.11  INCOMPLETE\n\
                    10.17.89.12 lladdr 02:00:00:00:00:02 STALE\n\
                    10.17.89.13  FAILED\n";
        let got: Vec<_> = parse_neighbours(text).into_iter().collect();
        assert_eq!(
            got,
            [Ipv4Addr::new(10, 17, 89, 10), Ipv4Addr::new(10, 17, 89, 12)]
        );
    }
}
