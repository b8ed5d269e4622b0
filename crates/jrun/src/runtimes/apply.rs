//! What applying a plan asks of a runtime, and what it reports back (`jrun up`).

use std::time::Duration;

use jrun_core::services::ServiceReady;
use serde::Serialize;

/// How `up` applies a plan.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// `--provision`: setup steps run again.
    pub provision: bool,
    /// How long to wait for the services the run (re)starts; `None`: `--no-wait`.
    pub wait: Option<Duration>,
    /// `JRUN_SSH_PORT`, which the forwards must leave alone.
    pub ssh_port: u16,
}

/// What `up` did, for `--json` and the closing summary.
#[derive(Debug, Default, Serialize)]
pub struct Outcome {
    pub changed: bool,
    pub deployed: Vec<Deployed>,
    pub removed: Vec<String>,
    pub unchanged: Vec<String>,
    /// Failed services (`<jail>/<exec>`) started again by this `up`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub revived: Vec<String>,
    /// The services this run started or restarted, and whether (and how soon) they were
    /// ready. Empty with `--no-wait`.
    pub services: Vec<ServiceReady>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Deployed {
    pub name: String,
    pub ip: std::net::Ipv4Addr,
    pub reasons: Vec<String>,
}

/// The reason's tag (`new_jail`, `forward_changed`…), as `jrun plan --json` names it.
pub fn reason_word(reason: &jrun_core::plan::Reason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.get("why").and_then(|w| w.as_str()).map(str::to_string))
        .unwrap_or_default()
}
