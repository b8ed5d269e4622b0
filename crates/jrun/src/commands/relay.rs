use std::net::SocketAddr;
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
    /// How long a pairing waits to be joined, then to be collected (e.g. 600, 90s, 10m, 1h).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub ttl: Duration,
    /// Largest request body in bytes (larger: 413).
    #[arg(long, default_value_t = 16 * 1024)]
    pub max_body: usize,
    /// Most jails in one roster.
    #[arg(long, default_value_t = 256)]
    pub max_roster: usize,
    /// Most pending pairings in total (more: 503).
    #[arg(long, default_value_t = 100_000)]
    pub max_pending: usize,
    /// Most pending pairings created from one client address (more: 429).
    #[arg(long, default_value_t = 32)]
    pub max_pending_per_client: usize,
    /// Requests per second allowed per client address, on average (more: 429).
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Requests a client address may make in a burst.
    #[arg(long, default_value_t = 40)]
    pub burst: u32,
    /// How long a client may take to send its headers, then its body (e.g. 10s).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub read_timeout: Duration,
    /// Most connections served at once.
    #[arg(long, default_value_t = 4096)]
    pub max_connections: usize,
    /// The relay sits behind a reverse proxy on this machine: for connections from
    /// loopback, limits count the client named last in X-Forwarded-For.
    #[arg(long)]
    pub behind_proxy: bool,
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

/// `600` (seconds), `90s`, `10m`, `1h`, `500ms`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 600, 90s, 10m, 1h)"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => return Ok(Duration::from_millis(n)),
        "m" | "min" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    Ok(Duration::from_secs(secs))
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let config = RelayConfig {
        ttl: args.ttl,
        max_body_bytes: args.max_body,
        max_roster_jails: args.max_roster,
        max_pending: args.max_pending,
        max_pending_per_client: args.max_pending_per_client,
        rate_per_second: args.rate,
        rate_burst: args.burst,
        read_timeout: args.read_timeout,
        max_connections: args.max_connections,
        behind_proxy: args.behind_proxy,
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
}
