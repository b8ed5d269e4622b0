use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use jrun_mesh::yggdrasil::{NodeConfig, NodeKey, PeerUri, TunInterface, YggVersion};
use jrun_mesh::{DnsLabel, KeyStore};
use jrun_relay::ygg_node::{YggNode, YggNodeSpec};
use jrun_relay::{Relay, RelayConfig};
use miette::{miette, IntoDiagnostic, WrapErr};

/// Run a pairing relay: the v1 HTTP API (POST /pair, GET|POST /pair/{code}, GET /healthz)
/// and, with --ygg-listen, a supervised Yggdrasil node for the instances to peer with.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to serve the HTTP API on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// How long a pairing waits to be joined, then to be collected (e.g. 600, 90s, 10m, 1h;
    /// at most a day).
    #[arg(long, default_value = "10m", value_parser = parse_relay_duration)]
    pub ttl: Duration,
    /// Largest request body in bytes (larger: 413).
    #[arg(long, default_value_t = 16 * 1024)]
    pub max_body: usize,
    /// Most jails in one roster.
    #[arg(long, default_value_t = 256)]
    pub max_roster: usize,
    /// Most pending pairings in total (more: 503).
    #[arg(long, default_value_t = 10_000)]
    pub max_pending: usize,
    /// Most bytes the pending pairings' rosters may take in total (more: 503).
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub max_pending_bytes: usize,
    /// Most pending pairings created from one client: an IPv4 address or IPv6 /64 (more: 429).
    #[arg(long, default_value_t = 32)]
    pub max_pending_per_client: usize,
    /// Most pending pairings created from one network: an IPv4 /24 or IPv6 /48 (more: 429).
    #[arg(long, default_value_t = 256)]
    pub max_pending_per_network: usize,
    /// Requests per second allowed per client (IPv4 address, IPv6 /64), on average (more:
    /// 429); above 0. Every request counts, /healthz too.
    #[arg(long, default_value_t = 10.0, value_parser = parse_rate)]
    pub rate: f64,
    /// Requests a client may make in a burst.
    #[arg(long, default_value_t = 40)]
    pub burst: u32,
    /// Requests per second allowed per network (IPv4 /24, IPv6 /48), on average (more:
    /// 429); above 0.
    #[arg(long, default_value_t = 40.0, value_parser = parse_rate)]
    pub network_rate: f64,
    /// Requests a network may make in a burst.
    #[arg(long, default_value_t = 160)]
    pub network_burst: u32,
    /// Failed code lookups (unknown, used or expired codes, wrong creator tokens) the
    /// relay answers per minute from everyone together; beyond it every code lookup gets
    /// 429 except a creator's poll with its token. Bounds the chance of guessing a code.
    #[arg(long, default_value_t = 6000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_failed_lookups: u32,
    /// How long a client may take to send its headers, then its body (e.g. 10s; at most a
    /// day).
    #[arg(long, default_value = "10s", value_parser = parse_relay_duration)]
    pub read_timeout: Duration,
    /// Most connections served at once.
    #[arg(long, default_value_t = 4096)]
    pub max_connections: usize,
    /// Most connections one client (IPv4 address, IPv6 /64) may hold open at once.
    #[arg(long, default_value_t = 64)]
    pub max_connections_per_client: usize,
    /// Most connections one network (IPv4 /24, IPv6 /48) may hold open at once.
    #[arg(long, default_value_t = 256)]
    pub max_connections_per_network: usize,
    /// Most requests served on one connection; the last answer closes it.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_requests_per_connection: u64,
    /// Longest a connection stays open (e.g. 60s; at most a day); then it is closed once
    /// its request in flight is answered.
    #[arg(long, default_value = "60s", value_parser = parse_relay_duration)]
    pub max_connection_lifetime: Duration,
    /// Longest a pairing v2 request may wait for the peer's next message (e.g. 30s);
    /// keep it under --max-connection-lifetime.
    #[arg(long, default_value = "30s", value_parser = parse_relay_duration)]
    pub max_wait: Duration,
    /// Most pairing v2 requests waiting at once (each also holds one of its client's
    /// --max-connections-per-client).
    #[arg(long, default_value_t = 1024)]
    pub max_parked: usize,
    /// The relay sits behind a reverse proxy: for connections from the proxy (any
    /// loopback address, or the --trusted-proxy addresses), limits count the client
    /// named last in X-Forwarded-For. Anyone who can connect from such an address can
    /// name any client, so use it only where no untrusted user can.
    #[arg(long)]
    pub behind_proxy: bool,
    /// The address the reverse proxy connects from (repeatable; implies --behind-proxy),
    /// e.g. a container bridge's 172.17.0.1. Once given, loopback is trusted only if named.
    #[arg(long, value_name = "ADDR")]
    pub trusted_proxy: Vec<IpAddr>,
    /// Run a Yggdrasil node listening on this URI (repeatable), e.g. tls://0.0.0.0:443.
    #[arg(long, value_name = "URI")]
    pub ygg_listen: Vec<PeerUri>,
    /// The yggdrasil binary.
    #[arg(long, default_value = "yggdrasil")]
    pub ygg_binary: PathBuf,
    /// Where the relay node's key (keys/relay.pem) and config live.
    #[arg(long, env = "JRUN_HOME")]
    pub home: Option<PathBuf>,
}

/// The longest duration any jrun flag takes: a week. Longer ones are refused before they
/// can overflow a clock (`Instant + Duration` panics).
pub(crate) const MAX_FLAG_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// `600` (seconds), `90s`, `10m`, `1h`, `500ms`; at most [`MAX_FLAG_DURATION`].
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 600, 90s, 10m, 1h)"))?;
    let scale = match unit {
        "" | "s" => 1000,
        "ms" => 1,
        "m" | "min" => 60 * 1000,
        "h" => 3600 * 1000,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    let too_long = || format!("{s:?} is too long; at most a week (168h) is allowed");
    let millis = n.checked_mul(scale).ok_or_else(too_long)?;
    let d = Duration::from_millis(millis);
    if d > MAX_FLAG_DURATION {
        return Err(too_long());
    }
    Ok(d)
}

/// A relay duration (`--ttl`, `--read-timeout`): as [`parse_duration`], at most a day.
fn parse_relay_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d > jrun_relay::MAX_TTL {
        return Err(format!("{s:?} is too long; at most a day (24h) is allowed"));
    }
    Ok(d)
}

/// Requests per second: a finite number above 0.
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a rate; give requests per second above 0 (e.g. 10 or 0.5)"
        )),
    }
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let config = RelayConfig {
        ttl: args.ttl,
        max_body_bytes: args.max_body,
        max_roster_jails: args.max_roster,
        max_pending: args.max_pending,
        max_pending_bytes: args.max_pending_bytes,
        max_pending_per_client: args.max_pending_per_client,
        max_pending_per_network: args.max_pending_per_network,
        rate_per_second: args.rate,
        rate_burst: args.burst,
        network_rate_per_second: args.network_rate,
        network_rate_burst: args.network_burst,
        max_failed_lookups_per_minute: args.max_failed_lookups,
        read_timeout: args.read_timeout,
        max_connections: args.max_connections,
        max_connections_per_client: args.max_connections_per_client,
        max_connections_per_network: args.max_connections_per_network,
        max_requests_per_connection: usize::try_from(args.max_requests_per_connection)
            .unwrap_or(usize::MAX),
        max_connection_lifetime: args.max_connection_lifetime,
        behind_proxy: args.behind_proxy || !args.trusted_proxy.is_empty(),
        trusted_proxies: args.trusted_proxy.clone(),
        max_wait: args.max_wait,
        max_parked: args.max_parked,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .into_diagnostic()?;
    runtime.block_on(serve(args, config))
}

async fn serve(args: Args, config: RelayConfig) -> miette::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot listen on {}", args.listen))?;
    let node = if args.ygg_listen.is_empty() {
        None
    } else {
        Some(start_node(&args)?)
    };
    eprintln!(
        "jrun relay: serving on http://{}",
        listener.local_addr().into_diagnostic()?
    );
    let served = Relay::new(config).serve(listener, shutdown_signal()).await;
    if let Some(node) = node {
        node.stop().await;
    }
    served.into_diagnostic()?;
    Ok(ExitCode::SUCCESS)
}

fn start_node(args: &Args) -> miette::Result<YggNode> {
    let home = match &args.home {
        Some(h) => h.clone(),
        None => {
            jrun_core::settings::Settings::load()
                .into_diagnostic()?
                .home
        }
    };
    let key = KeyStore::open(&home)
        .named_key(&DnsLabel::new("relay").expect("a valid label"))
        .into_diagnostic()?;
    let version = YggVersion::detect(&args.ygg_binary).into_diagnostic()?;
    let spec = YggNodeSpec {
        binary: args.ygg_binary.clone(),
        version,
        config_path: home.join("relay").join("yggdrasil.conf"),
        config: NodeConfig {
            listen: args.ygg_listen.clone(),
            peers: Vec::new(),
            if_name: TunInterface::None,
            admin_socket: None,
            key: NodeKey {
                pem_path: key.path.clone(),
                identity: key.identity.clone(),
            },
        },
    };
    eprintln!(
        "jrun relay: Yggdrasil {version} node {} listening on {}",
        key.identity.address(),
        args.ygg_listen
            .iter()
            .map(PeerUri::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    );
    YggNode::start(spec).map_err(|e| miette!("{e}"))
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    eprintln!("jrun relay: shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("600"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "m", "10 m", "10x", "-1"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_are_bounded_without_overflow() {
        assert_eq!(parse_duration("168h"), Ok(MAX_FLAG_DURATION));
        for bad in [
            "169h",
            "5124095576030432h",
            "18446744073709551615m",
            "99999999999999999999",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(
                err.contains("too long") || err.contains("not a duration"),
                "{bad}: {err}"
            );
        }
        assert_eq!(parse_relay_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert!(parse_relay_duration("25h").is_err());
    }

    #[test]
    fn rates_are_positive_and_finite() {
        assert_eq!(parse_rate("10"), Ok(10.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        for bad in ["0", "-1", "NaN", "inf", "1e999", "x", ""] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
