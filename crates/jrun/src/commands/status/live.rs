//! `jrun status --live`: each jail's processes, CPU and memory, refreshed every
//! `--interval` until Ctrl-C (or `--count` refreshes), with a sparkline of its recent CPU.
//! On a terminal the view is redrawn in place; otherwise (and with `--json`, one object a
//! line) each refresh is printed after the last.

use std::collections::{BTreeMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Instant;

use jrun_core::config::JailName;
use jrun_core::settings::Settings;
use jrun_core::state::StateStore;
use miette::{miette, IntoDiagnostic};
use serde::Serialize;

use super::Args;
use crate::runtimes::{self, Driver};

/// CPU samples a sparkline shows.
const HISTORY: usize = 20;

#[derive(Debug, Serialize)]
struct Frame {
    /// Seconds since the Unix epoch.
    time: u64,
    jails: Vec<Row>,
}

#[derive(Debug, Serialize)]
struct Row {
    jail: String,
    processes: u32,
    /// Percent of one core since the last refresh (`null` on the first where the runtime
    /// measures CPU time, not a rate).
    cpu_percent: Option<f64>,
    rss_bytes: u64,
}

pub(super) fn run(selected: &Driver, settings: &Settings, args: &Args) -> miette::Result<ExitCode> {
    let state = StateStore::new(&settings.home).read().into_diagnostic()?;
    let jails: Vec<JailName> = match &args.jail {
        Some(j) => {
            let name = JailName::new(j.as_str()).into_diagnostic()?;
            if !state.jails.contains_key(&name) {
                return Err(miette!(
                    help = "`jrun status` lists the jails",
                    "there is no jail named {j:?}"
                ));
            }
            vec![name]
        }
        None => state.jails.keys().cloned().collect(),
    };
    let redraw = std::io::stdout().is_terminal() && !args.json;
    let mut last: BTreeMap<String, (Instant, f64)> = BTreeMap::new();
    let mut history: BTreeMap<String, VecDeque<f64>> = BTreeMap::new();
    let mut shown = 0;
    loop {
        if !selected.runtime().instance().into_diagnostic()?.running {
            return Err(miette!(
                help = "`jrun start` starts it",
                "the instance is not running"
            ));
        }
        let usage = selected.jail_usage(&jails).map_err(|e| miette!("{e}"))?;
        let now = Instant::now();
        let rows: Vec<Row> = jails
            .iter()
            .map(|j| {
                let u = usage.iter().find(|u| u.jail == j.as_str());
                let cpu = u.and_then(|u| match (u.cpu_percent, u.cpu_seconds) {
                    (Some(p), _) => Some(p),
                    (None, Some(secs)) => {
                        let before = last.insert(j.to_string(), (now, secs));
                        before.and_then(|(t, s)| {
                            let dt = now.duration_since(t).as_secs_f64();
                            (dt > 0.0).then(|| (secs - s).max(0.0) / dt * 100.0)
                        })
                    }
                    (None, None) => None,
                });
                if let Some(c) = cpu {
                    let h = history.entry(j.to_string()).or_default();
                    h.push_back(c);
                    if h.len() > HISTORY {
                        h.pop_front();
                    }
                }
                Row {
                    jail: j.to_string(),
                    processes: u.map_or(0, |u| u.processes),
                    cpu_percent: cpu.map(|c| (c * 10.0).round() / 10.0),
                    rss_bytes: u.map_or(0, |u| u.rss_bytes),
                }
            })
            .collect();
        let mut out = std::io::stdout().lock();
        if args.json {
            let frame = Frame {
                time: jrun_core::services::now_ms() / 1000,
                jails: rows,
            };
            let _ = writeln!(out, "{}", serde_json::to_string(&frame).into_diagnostic()?);
        } else {
            if redraw {
                let _ = write!(out, "\x1b[H\x1b[2J");
            }
            let _ = write!(out, "{}", render(&rows, &history, args.interval));
            if !redraw {
                let _ = writeln!(out);
            }
        }
        let _ = out.flush();
        drop(out);
        shown += 1;
        if args.count.is_some_and(|c| shown >= c) {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(args.interval);
    }
}

fn render(
    rows: &[Row],
    history: &BTreeMap<String, VecDeque<f64>>,
    interval: std::time::Duration,
) -> String {
    let mut out = format!(
        "jrun status --live · every {} · Ctrl-C stops\n\n{:<20} {:>5} {:>7} {:>8}  CPU (last {HISTORY})\n",
        humantime(interval),
        "JAIL",
        "PROCS",
        "CPU%",
        "MEM"
    );
    if rows.is_empty() {
        out.push_str("no jails (`jrun up <config>` deploys them)\n");
    }
    for r in rows {
        out.push_str(&format!(
            "{:<20} {:>5} {:>7} {:>8}  {}\n",
            r.jail,
            r.processes,
            r.cpu_percent
                .map_or_else(|| "-".to_string(), |c| format!("{c:.1}")),
            runtimes::human_size(r.rss_bytes),
            history.get(&r.jail).map_or_else(String::new, sparkline)
        ));
    }
    out
}

fn humantime(d: std::time::Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// One block per sample, scaled to 100% of a core (more is drawn full).
fn sparkline(samples: &VecDeque<f64>) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    samples
        .iter()
        .map(|c| BARS[((c.clamp(0.0, 100.0) / 100.0) * 7.0).round() as usize])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_scale_to_one_core() {
        let s: VecDeque<f64> = [0.0, 50.0, 100.0, 250.0].into_iter().collect();
        assert_eq!(sparkline(&s), "▁▅██");
    }
}
