//! Native runtime, end to end (root): a jail's first DNS query is answered, asked once,
//! with every CPU busy: right after `stop`/`start`/`up`, after an `up` that changes a
//! running jail, and after an `up` that adds a jail to a running instance (the `up` that
//! probes the bridge for free addresses). That probe leaves no unanswered neighbour entries
//! behind: their retransmitted broadcasts, flooded to every bridge port, once overflowed
//! the kernel's receive backlog and dropped replies in every namespace.

mod local_env;
mod native_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use native_support::Instance;

/// How many first queries in a row each test must see answered.
const QUERIES: usize = 50;

/// A spinning thread on every CPU until dropped: the load under which answers were lost.
struct BusyCpus {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl BusyCpus {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = (0..cpus)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        BusyCpus { stop, threads }
    }
}

impl Drop for BusyCpus {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The first query from `jail` for `name`, which must be `expected`; a miss is recorded
/// (with the case and round) rather than panicking, so a failure reports how many missed.
fn first_query(
    inst: &Instance,
    jail: &str,
    name: &str,
    expected: &str,
    case: &str,
    misses: &mut Vec<String>,
) {
    match inst.dig_once(jail, name) {
        Ok(ip) if ip == expected => {}
        Ok(other) => misses.push(format!("{case}: {jail} asked {name}, got {other}")),
        Err(e) => misses.push(format!("{case}: {jail} asked {name}: {e}")),
    }
}

#[test]
fn an_up_that_probed_leaves_no_unanswered_neighbours() {
    let inst = Instance::new(false);
    inst.start();
    let cfg = inst.config("jail \"a\" { }\njail \"b\" { }\n");
    let out = inst.up(&cfg);
    assert!(out.contains('a'), "{out}");
    assert_eq!(inst.unanswered_neighbours(), Vec::<String>::new());
    // A jail added later probes again, among jails already on the bridge.
    let cfg = inst.config("jail \"a\" { }\njail \"b\" { }\njail \"c\" { }\n");
    inst.up(&cfg);
    assert_eq!(inst.unanswered_neighbours(), Vec::<String>::new());
}

#[test]
fn first_query_answers_after_stop_start_up_and_after_changing_up() {
    let inst = Instance::new(false);
    inst.start();
    let plain = inst.config("jail \"a\" { }\njail \"b\" { }\n");
    inst.up(&plain);
    let host_port = native_support::free_port();
    let _busy = BusyCpus::start();
    let (mut misses, mut stop_errors) = (Vec::new(), Vec::new());
    // Two jails, each asking its first query: two queries a round.
    for round in 0..QUERIES / 2 {
        let case = if round % 2 == 0 {
            // A failed stop is counted apart from the queries, which still run.
            let stop = inst.run(&["stop"]);
            if !stop.status.success() {
                stop_errors.push(format!(
                    "round {round}: {}",
                    String::from_utf8_lossy(&stop.stderr).trim()
                ));
            }
            inst.start();
            inst.up(&plain);
            format!("round {round}, after stop/start/up")
        } else {
            // A change to a running jail (the port its forward reaches): its firewall and
            // the forward are loaded again, its network is kept.
            let cfg = inst.config(&format!(
                "jail \"a\" {{ forward {{ p {{ host = {host_port}; jail = {}; }} }} }}\n\
                 jail \"b\" {{ }}\n",
                8000 + round
            ));
            inst.up(&cfg);
            format!("round {round}, after an up changing jail a")
        };
        let (a, b) = (inst.ip_of("a"), inst.ip_of("b"));
        first_query(&inst, "a", "b.local.jrun", &b, &case, &mut misses);
        first_query(&inst, "b", "a.local.jrun", &a, &case, &mut misses);
    }
    assert!(
        misses.is_empty(),
        "{} of {} first queries unanswered:\n{}",
        misses.len(),
        QUERIES,
        misses.join("\n")
    );
    assert_eq!(stop_errors, Vec::<String>::new());
}

#[test]
fn first_query_answers_after_adding_a_jail_to_a_running_instance() {
    let inst = Instance::new(false);
    inst.start();
    // Several jails on the bridge: each one's port gets every broadcast the bridge floods.
    let base: String = (0..8).map(|i| format!("jail \"b{i}\" {{ }}\n")).collect();
    inst.up(&inst.config(&base));
    let _busy = BusyCpus::start();
    let mut misses = Vec::new();
    for round in 0..QUERIES {
        let new = format!("n{round}");
        inst.up(&inst.config(&format!("{base}jail \"{new}\" {{ }}\n")));
        let case = format!("round {round}, after adding {new}");
        let ip = inst.ip_of(&new);
        first_query(
            &inst,
            &new,
            &format!("{new}.local.jrun"),
            &ip,
            &case,
            &mut misses,
        );
        inst.ok(&["down", &new]);
    }
    assert!(
        misses.is_empty(),
        "{} of {QUERIES} first queries unanswered:\n{}",
        misses.len(),
        misses.join("\n")
    );
}
