//! `jrun pair`, `jrun pair <code>`, `jrun pair --list`, `jrun pair --drop <code>`.
//!
//! The state lock is taken to read this side's roster, released while the relay is asked
//! (and while the creator waits for its peer), then taken again to record and apply the
//! peer's roster. Nothing from the relay is used before the client validated it, and
//! nothing changes on the machine unless the whole new wiring applied.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jrun_core::config::JailName;
use jrun_core::state::{LockWait, MeshPeer, PairDirection, State, StateStore};
use jrun_mesh::pair_v2::{self, Side, V2Code};
use jrun_mesh::protocol::{Roster, MAX_ROSTER_JAILS};
use jrun_mesh::{
    exchange_v2, ClientError, ClientOptions, Identity, KeyStore, PairCode, PollOptions,
    RelayClient, RelayMailbox,
};
use miette::{miette, IntoDiagnostic};
use serde::Serialize;

use crate::pairing::{self, PairError};
use crate::runtimes;

/// Without arguments: create a pairing, print its code and wait for the peer.
/// With a code: join the peer's pairing.
///
/// With a relay that offers pairing v2 (jrun relay) the relay can neither read nor swap
/// the rosters (docs/pairing.md); otherwise v1 is used, with a warning. Both sides print
/// the same fingerprint (four words): compare them with your peer.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// A code from the peer's `jrun pair` (e.g. 81-zephyr-night-climb).
    #[arg(conflicts_with_all = ["list", "drop"])]
    pub code: Option<String>,
    /// List the remote jails of every pairing.
    #[arg(short = 'l', long, conflicts_with = "drop")]
    pub list: bool,
    /// Revoke a pairing: its firewall allowances and DNS names.
    #[arg(long, value_name = "CODE")]
    pub drop: Option<String>,
    /// Offer only these jails (comma-separated; default: every deployed jail). Only they
    /// admit the peer's jails. With the code of an existing pairing, changes which local
    /// jails it shares, without the relay.
    #[arg(long, value_name = "JAILS", value_delimiter = ',', conflicts_with_all = ["list", "drop"])]
    pub share: Option<Vec<String>>,
    /// How long to wait for the peer to join (e.g. 90s, 10m).
    #[arg(long, default_value = "10m", value_name = "DURATION", value_parser = super::relay::parse_duration)]
    pub timeout: Duration,
    /// Accept a plain http:// relay on another machine (anyone on the way can then read
    /// and rewrite both rosters); the same as JRUN_RELAY_INSECURE=1. A relay on this
    /// machine (localhost, 127.0.0.0/8, ::1) needs no flag.
    #[arg(long)]
    pub insecure_relay: bool,
    /// Print JSON for scripts (`jrun pair` prints one line when the code is known and
    /// one when the peer joined).
    #[arg(long)]
    pub json: bool,
}

/// How long a jail's node, started by the last `up`, may take to answer.
const NODE_PATIENCE: Duration = Duration::from_secs(10);

/// The exit code of a wait cancelled with Ctrl-C, as shells report SIGINT.
const CANCELLED: u8 = 130;

/// One remote jail, for `--list` and the pairing's outcome.
#[derive(Debug, Serialize)]
struct Row {
    name: String,
    code: String,
    dns: String,
    address: String,
    paired_at: u64,
    direction: PairDirection,
    /// The local jails the pairing shares; `null`: every local jail (a pairing recorded
    /// before jrun recorded shares).
    shares: Option<Vec<String>>,
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let settings = runtimes::settings()?;
    let store = StateStore::new(&settings.home);
    if args.list {
        let state = store.read().into_diagnostic()?;
        print_rows(&rows(state.peers.values()), args.json);
        return Ok(ExitCode::SUCCESS);
    }
    // The relay's URL is checked before anything else happens, and before any traffic.
    let client = if args.drop.is_none() {
        let options = ClientOptions {
            insecure_http: args.insecure_relay || settings.relay_insecure,
        };
        Some(RelayClient::with_options(&settings.relay, options).map_err(client_report)?)
    } else {
        None
    };
    let selected = runtimes::select(&settings)?;
    selected.require_privileges("jrun pair")?;
    let rt = selected.runtime();
    if !settings.mesh_network && args.drop.is_none() {
        return Err(miette!(
            help = "set JRUN_MESH_NETWORK=true, run `jrun up` again, then pair",
            "the mesh is off on this instance (JRUN_MESH_NETWORK=false): jails have no nodes to pair"
        ));
    }
    let running = rt.instance().into_diagnostic()?.running;
    if let Some(code) = &args.drop {
        // A stopped instance has no sets or records to change: the next `up` rebuilds
        // them from the state, without this pairing.
        return drop_pairing(running.then_some(rt), &store, &parse_code(code)?, args.json);
    }
    let share = match &args.share {
        Some(names) => Some(parse_share(names)?),
        None => None,
    };
    if let (Some(code), Some(share)) = (&args.code, &share) {
        let code = parse_code(code)?;
        if store.read().into_diagnostic()?.peers.contains_key(&code) {
            return reshare(running.then_some(rt), &store, &code, share, args.json);
        }
    }
    if !running {
        return Err(miette!(
            help = "run `jrun start` and `jrun up <config>` first",
            "the instance is not running"
        ));
    }

    // Read this side's roster (and, for v2, its jails' keys) under the lock, then let
    // the lock go.
    let keys = KeyStore::open(&settings.home);
    let (roster, joining) = {
        let lock = store.lock(LockWait::No).into_diagnostic()?;
        let joining = match &args.code {
            Some(code) => {
                let code = parse_code(code)?;
                pairing::check_code_free(&lock.state, &code).map_err(report)?;
                Some(code)
            }
            None => None,
        };
        let shared = pairing::shared_jails(&lock.state, share.as_deref()).map_err(report)?;
        let running = |jail: &JailName| selected.running_mesh_address(jail);
        let roster =
            pairing::local_roster(&lock.state, &shared, &keys, rt, &running, NODE_PATIENCE)
                .map_err(report)?;
        (roster, joining)
    };
    let client = client.expect("made unless dropping");
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .into_diagnostic()?;
    let offer = tokio.block_on(client.offers_v2()).map_err(client_report)?;
    let offers_v2 = offer.is_some();
    // A v2 code (a nameplate of four or more digits, then three list words) on a relay
    // that speaks v2; anything else is v1, as Jailrun's clients and relays speak it.
    let v2_code = match &joining {
        Some(code) => V2Code::parse(code).filter(|_| offers_v2),
        None => None,
    };
    let use_v2 = offers_v2 && (joining.is_none() || v2_code.is_some());
    let protocol = if use_v2 { 2 } else { 1 };
    if !use_v2 {
        eprintln!(
            "jrun: warning: {}; with pairing v1 the relay (or anyone on the way to it) could read both rosters and swap them unnoticed. Compare the fingerprint printed at the end with your peer's (say it over the phone) before relying on this pairing.",
            if offers_v2 {
                "this code is a v1 code (your peer's jrun or relay does not speak pairing v2)".to_string()
            } else {
                format!("the relay at {} does not offer pairing v2", client.url())
            }
        );
    }
    let identities = if use_v2 {
        // A roster the relay would refuse fails here, before a code is handed out: against
        // the body limit the relay states (an older relay's is assumed the default).
        let limit = offer.as_ref().and_then(|o| o.max_body_bytes);
        pair_v2::check_roster_fits(roster.jails.iter().map(|j| &j.name), limit)
            .map_err(|e| miette!("{e}"))?;
        jail_identities(&keys, &roster).map_err(report)?
    } else {
        Vec::new()
    };
    // At most a second between polls: once the peer joined, this side applies the
    // pairing within about a second (a relay allows 10 requests a second per client). v2
    // does not poll: its requests wait at the relay for the peer's messages; the pauses
    // only space retries after a busy or unreachable relay.
    let options = PollOptions {
        deadline: args.timeout,
        first_interval: Duration::from_millis(250),
        max_interval: Duration::from_secs(1),
    };

    let (code, direction, remote) = match (joining, v2_code) {
        (Some(_), Some(v2)) => {
            let code = v2.code();
            let mut interrupt = catch_interrupt(&tokio)?;
            let mut mailbox = RelayMailbox::join(&client, &v2, options);
            let exchange = exchange_v2(&mut mailbox, Side::B, &v2, &identities, MAX_ROSTER_JAILS);
            match wait(&tokio, &mut interrupt, &code, None, args.json, exchange) {
                Ok(remote) => (code, PairDirection::Joined, remote),
                Err(e) => return cancelled_or(e, &code),
            }
        }
        (Some(code), None) => {
            let remote = tokio
                .block_on(client.join(&code, &roster))
                .map_err(|e| exchanged_report(e, &code, &roster))?;
            (code, PairDirection::Joined, remote)
        }
        (None, _) if use_v2 => {
            // The relay allocates the nameplate; the words are drawn here and never
            // reach it.
            let (v2, mut mailbox) = tokio
                .block_on(RelayMailbox::create(&client, options))
                .map_err(client_report)?;
            let code = v2.code();
            let exchange = exchange_v2(&mut mailbox, Side::A, &v2, &identities, MAX_ROSTER_JAILS);
            match announce_and_wait(&tokio, &code, &args, exchange)? {
                Ok(remote) => (code, PairDirection::Created, remote),
                Err(e) => return cancelled_or(e, &code),
            }
        }
        (None, _) => {
            // The creator token (when the relay issues one) stays in this process: only
            // this side can collect the joiner's roster, and nobody else can learn from
            // the relay whether the code is live.
            let created = tokio
                .block_on(client.create(&roster))
                .map_err(client_report)?;
            let code = created.code.clone();
            let waiting = client.wait_for_join(&created, &options, std::future::pending());
            match announce_and_wait(&tokio, &code, &args, waiting)? {
                Ok(remote) => (code, PairDirection::Created, remote),
                Err(ClientError::Cancelled { .. }) => {
                    return cancelled_or(ClientError::Cancelled { code: code.clone() }, &code)
                }
                Err(e) => return Err(exchanged_report(e, &code, &roster)),
            }
        }
    };
    let fingerprint = match direction {
        PairDirection::Created => jrun_mesh::fingerprint(&code, &roster, &remote),
        PairDirection::Joined => jrun_mesh::fingerprint(&code, &remote, &roster),
    };

    // Record and apply under the lock, from the state as it is now. The relay has handed
    // this side's roster to the peer: whatever fails from here, the message says so.
    let mut lock = store.lock(LockWait::Yes).into_diagnostic()?;
    let before = lock.state.clone();
    let peer = pairing::new_peer(&before, &code, direction, now(), &remote, &roster)
        .map_err(|e| miette!("{}", not_applied(&e.to_string(), &code, &roster)))?;
    let mut after = before.clone();
    after.peers.insert(code.clone(), peer.clone());
    if let Err(e) = apply_journaled(Some(rt), &mut lock, before, after)? {
        return Err(miette!("{}", not_applied(&e.to_string(), &code, &roster)));
    }
    drop(lock);
    print_paired(&peer, protocol, &fingerprint, args.json);
    Ok(ExitCode::SUCCESS)
}

/// Moves the state, and the running instance when there is one (`rt`), from `before` to
/// `after`, journaled: `after` is saved marked `mesh_pending` before any rule changes, so a
/// crash from here on leaves what `pair --list` shows, `--drop` removes and the next `up` or
/// `start` finishes; the mark is cleared once the instance matches. If applying fails,
/// `before` is saved back, still marked (the undo of the wiring is best effort, and the
/// next `up` or `start` makes sure it matches), and the apply's error is returned inside.
/// A stopped instance has nothing to apply: its next `up` builds the wiring from the state.
fn apply_journaled(
    rt: Option<&dyn jrun_core::runtime::Runtime>,
    lock: &mut jrun_core::state::StateLock,
    before: State,
    mut after: State,
) -> miette::Result<Result<(), jrun_core::runtime::RuntimeError>> {
    if let Some(rt) = rt {
        after.mesh_pending = true;
        lock.state = after.clone();
        lock.save().into_diagnostic()?;
        jrun_core::fault::after("pair-recorded");
        if let Err(e) = pairing::apply(rt, &before, &after) {
            lock.state = State {
                mesh_pending: true,
                ..before
            };
            lock.save().into_diagnostic()?;
            return Ok(Err(e));
        }
        jrun_core::fault::after("pair-applied");
        after.mesh_pending = false;
    }
    lock.state = after;
    lock.save().into_diagnostic()?;
    Ok(Ok(()))
}

/// Why the pairing was not applied here, and what the other side already has: the relay
/// gave it this side's roster, so it may have opened its jails to them.
fn not_applied(why: &str, code: &PairCode, mine: &Roster) -> String {
    let names: Vec<&str> = mine.jails.iter().map(|j| j.name.as_str()).collect();
    format!(
        "{why}. The pairing {code} was not applied here: this side is as before. But the relay already gave the other side your roster ({}), so it may have opened its jails to them: ask them to run `jrun pair --drop {code}`",
        names.join(", ")
    )
}

/// Catches Ctrl-C from now on. The handler is in place when the signal stream is made, not
/// when it is first polled (as `tokio::signal::ctrl_c` would be): a Ctrl-C right after the
/// code is shown, while SPAKE2 still computes, cancels the wait instead of killing jrun.
fn catch_interrupt(tokio: &tokio::runtime::Runtime) -> miette::Result<tokio::signal::unix::Signal> {
    let _in_runtime = tokio.enter();
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).into_diagnostic()
}

/// Runs an exchange with the relay (waiting for the peer, or the v2 steps) with a spinner
/// on a terminal; Ctrl-C cancels. `waiting` is the creator's patience, shown to the user.
/// The creator's side once it holds a code: Ctrl-C is caught before the code is shown (a
/// peer may act on it at once), then the code is shown and the exchange awaited for up to
/// `--timeout`.
fn announce_and_wait<T>(
    tokio: &tokio::runtime::Runtime,
    code: &PairCode,
    args: &Args,
    exchange: impl std::future::Future<Output = Result<T, ClientError>>,
) -> miette::Result<Result<T, ClientError>> {
    let mut interrupt = catch_interrupt(tokio)?;
    announce(code, args.json);
    Ok(wait(
        tokio,
        &mut interrupt,
        code,
        Some(args.timeout),
        args.json,
        exchange,
    ))
}

fn wait<T>(
    tokio: &tokio::runtime::Runtime,
    interrupt: &mut tokio::signal::unix::Signal,
    code: &PairCode,
    waiting: Option<Duration>,
    json: bool,
    exchange: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    let message = if waiting.is_some() {
        format!("waiting for your peer to join {code} (Ctrl-C cancels)")
    } else {
        format!("pairing with {code} (Ctrl-C cancels)")
    };
    let spinner = (!json && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    });
    if let (None, false, Some(deadline)) = (&spinner, json, waiting) {
        eprintln!("jrun: waiting up to {deadline:?} for the peer to join {code}…");
    }
    let cancel = async {
        // Without a handler Ctrl-C would kill us mid-write; with it, the wait just ends.
        if interrupt.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    };
    let result = tokio.block_on(async {
        tokio::select! {
            () = cancel => Err(ClientError::Cancelled { code: code.clone() }),
            r = exchange => r,
        }
    });
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    result
}

/// The exit of a pairing that did not go through: 130 after Ctrl-C, else the error.
fn cancelled_or(e: ClientError, code: &PairCode) -> miette::Result<ExitCode> {
    match e {
        ClientError::Cancelled { .. } => {
            eprintln!("jrun: pairing {code} cancelled; nothing was changed.");
            Ok(ExitCode::from(CANCELLED))
        }
        e => Err(client_report(e)),
    }
}

/// Each roster jail's key, to sign its v2 roster entry.
fn jail_identities(
    keys: &KeyStore,
    roster: &Roster,
) -> Result<Vec<(JailName, Identity)>, PairError> {
    roster
        .jails
        .iter()
        .map(|j| {
            let key = keys
                .existing_jail_key(&j.name)
                .map_err(|e| PairError::BadKey {
                    jail: j.name.to_string(),
                    cause: e.to_string(),
                })?
                .ok_or_else(|| PairError::NoKey {
                    jail: j.name.to_string(),
                    dir: keys.dir().display().to_string(),
                })?;
            Ok((j.name.clone(), key.identity))
        })
        .collect()
}

fn drop_pairing(
    rt: Option<&dyn jrun_core::runtime::Runtime>,
    store: &StateStore,
    code: &PairCode,
    json: bool,
) -> miette::Result<ExitCode> {
    let mut lock = store.lock(LockWait::No).into_diagnostic()?;
    let before = lock.state.clone();
    let mut after = before.clone();
    let Some(peer) = after.peers.remove(code) else {
        return Err(report(PairError::NoSuchPairing { code: code.clone() }));
    };
    if let Err(e) = apply_journaled(rt, &mut lock, before, after)? {
        return Err(miette!("{e}; pairing {code} is still in place"));
    }
    if json {
        let out = serde_json::json!({ "dropped": code.as_str(), "jails": rows([&peer]) });
        println!("{out}");
    } else {
        // A pairing recorded before jrun refused shared addresses may list one that
        // another pairing lists too: that one stays allowed, and the user is told.
        let kept: Vec<String> = peer
            .jails
            .iter()
            .filter(|j| lock.state.mesh_addresses().any(|a| a == j.ygg_address))
            .map(|j| format!("{} ({})", j.ygg_address, j.name))
            .collect();
        if kept.is_empty() {
            println!(
                "Dropped pairing {code}: {} remote jail(s) can no longer reach yours, and their names are gone.",
                peer.jails.len()
            );
        } else {
            println!(
                "Dropped pairing {code}; these addresses stay allowed because another pairing lists them too: {}",
                kept.join(", ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `jrun pair --share <jails> <code>` for a pairing that exists: it shares exactly those
/// jails from now on. Nothing goes to the relay or the peer; a stopped instance has no
/// sets to change (the next `up` builds them from the state).
fn reshare(
    rt: Option<&dyn jrun_core::runtime::Runtime>,
    store: &StateStore,
    code: &PairCode,
    share: &[JailName],
    json: bool,
) -> miette::Result<ExitCode> {
    let mut lock = store.lock(LockWait::No).into_diagnostic()?;
    let before = lock.state.clone();
    let shared = pairing::shared_jails(&before, Some(share)).map_err(report)?;
    let after = pairing::reshare(&before, code, shared.clone()).map_err(report)?;
    if let Err(e) = apply_journaled(rt, &mut lock, before, after)? {
        return Err(miette!("{e}; pairing {code} shares what it shared before"));
    }
    let names: Vec<&str> = shared.iter().map(|j| j.as_str()).collect();
    if json {
        let out = serde_json::json!({ "code": code.as_str(), "shared": names });
        println!("{out}");
    } else {
        println!(
            "Pairing {code} now shares: {}. The peer's jails reach only these of yours (the peer has names only for the jails of the roster you sent when pairing).",
            names.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The jail names of `--share`, each a valid name, at least one.
fn parse_share(names: &[String]) -> miette::Result<Vec<JailName>> {
    let names: Vec<JailName> = names
        .iter()
        .filter(|n| !n.trim().is_empty())
        .map(|n| {
            JailName::new(n.trim()).map_err(|_| {
                miette!(
                    help = "name jails as `jrun status` lists them, e.g. --share web,db",
                    "--share: {n:?} is not a jail name"
                )
            })
        })
        .collect::<Result<_, _>>()?;
    if names.is_empty() {
        return Err(miette!(
            help = "name at least one jail, e.g. --share web,db; `jrun pair --drop <code>` ends a pairing",
            "--share names no jail"
        ));
    }
    Ok(names)
}

fn parse_code(code: &str) -> miette::Result<PairCode> {
    code.parse().map_err(|_| {
        miette!(
            help = "type the code the other side's `jrun pair` printed (e.g. 81-zephyr-night-climb): lowercase letters, digits and inner hyphens",
            "{code:?} is not a pairing code"
        )
    })
}

fn announce(code: &PairCode, json: bool) {
    let mut out = std::io::stdout().lock();
    if json {
        let line = serde_json::json!({ "event": "created", "code": code.as_str() });
        let _ = writeln!(out, "{line}");
    } else {
        let _ = writeln!(
            out,
            "Pairing code: {code}\nTell your peer: jrun pair {code}"
        );
    }
    // Whoever reads our stdout needs the code now, not when we exit.
    let _ = out.flush();
}

fn print_paired(peer: &MeshPeer, protocol: u8, fingerprint: &str, json: bool) {
    let rows = rows([peer]);
    if json {
        let line = serde_json::json!({
            "event": "paired",
            "code": peer.code.as_str(),
            "protocol": protocol,
            "fingerprint": fingerprint,
            "jails": rows,
        });
        println!("{line}");
        return;
    }
    println!(
        "Paired under {} (protocol v{protocol}): your jails now reach {} remote jail(s):",
        peer.code,
        rows.len()
    );
    for r in &rows {
        println!("  {}  {}", r.dns, r.address);
    }
    if let Some(shared) = &peer.shared {
        let names: Vec<&str> = shared.iter().map(|j| j.as_str()).collect();
        println!("They reach only these jails of yours: {}", names.join(", "));
    }
    println!("Fingerprint: {fingerprint} (your peer sees the same words; if not, run `jrun pair --drop {}`)", peer.code);
}

fn rows<'a>(peers: impl IntoIterator<Item = &'a MeshPeer>) -> Vec<Row> {
    peers
        .into_iter()
        .flat_map(|p| {
            p.jails.iter().map(move |j| Row {
                name: j.name.to_string(),
                code: p.code.to_string(),
                dns: format!("{}.{}.jrun", j.name, p.code),
                address: j.ygg_address.to_string(),
                paired_at: p.paired_at,
                direction: p.direction,
                shares: p
                    .shared
                    .as_ref()
                    .map(|s| s.iter().map(|j| j.to_string()).collect()),
            })
        })
        .collect()
}

fn print_rows(rows: &[Row], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(rows).expect("plain data serialises")
        );
        return;
    }
    if rows.is_empty() {
        println!("No pairings. `jrun pair` creates one.");
        return;
    }
    println!(
        "{:<20} {:<28} {:<40} PAIRED AT (UTC)",
        "NAME", "PEER CODE", "ADDRESS"
    );
    for r in rows {
        println!(
            "{:<20} {:<28} {:<40} {}",
            r.name,
            r.code,
            r.address,
            crate::time_fmt::utc_minutes(r.paired_at)
        );
    }
    let mut codes: Vec<(&str, &Option<Vec<String>>)> =
        rows.iter().map(|r| (r.code.as_str(), &r.shares)).collect();
    codes.dedup();
    println!();
    for (code, shares) in codes {
        match shares {
            Some(s) if s.is_empty() => println!("{code} shares none of your jails"),
            Some(s) => println!("{code} reaches your jails: {}", s.join(", ")),
            None => println!(
                "{code} reaches every jail of yours, also later ones (recorded before jrun recorded shares; `jrun pair --share <jails> {code}` narrows it)"
            ),
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn report(e: PairError) -> miette::Report {
    miette!("{e}")
}

fn client_report(e: ClientError) -> miette::Report {
    miette!("{e}")
}

/// A relay error once the exchange may have happened: an invalid answer arrives after the
/// relay took this side's roster (a join) or handed it over (a creator's poll), so the
/// other side may have it.
fn exchanged_report(e: ClientError, code: &PairCode, mine: &Roster) -> miette::Report {
    match e {
        ClientError::Garbage { .. } => miette!("{}", not_applied(&e.to_string(), code, mine)),
        e => client_report(e),
    }
}
