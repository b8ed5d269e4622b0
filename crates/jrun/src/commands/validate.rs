//! `jrun validate <config>`: check a config file and summarise it, touching nothing.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use jrun_core::config::{self, Config, ConfigErrors, SetupKind, SetupSource};
use jrun_core::settings::Settings;
use miette::{IntoDiagnostic, WrapErr};

/// Width of diagnostics written to a pipe or a file: fixed, so logs read the same everywhere.
const PLAIN_WIDTH: usize = 100;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit status:
  0  the config is valid (warnings, if any, are printed on stderr)
  1  the config is invalid or cannot be read: every problem is printed on stderr,
     with file, line, column, cause and a hint; or the JRUN_* settings are invalid
  2  the command line is wrong")]
pub struct Args {
    /// The config file to check.
    pub config: PathBuf,
    /// Print the typed config as JSON on stdout (on failure: the problems, as JSON).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let settings = Settings::load()
        .into_diagnostic()
        .wrap_err("cannot read jrun's settings (JRUN_* variables or ./.env)")?;
    match config::load_with_warnings(&args.config, settings.ssh_port) {
        Ok(loaded) => {
            if !loaded.warnings.is_empty() {
                print_diagnostics(&loaded.warnings);
            }
            if args.json {
                let json = serde_json::to_string_pretty(&loaded.config).into_diagnostic()?;
                println!("{json}");
            } else {
                print!("{}", summary(&loaded.config, &args.config));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            print_diagnostics(&errors);
            if args.json {
                println!("{}", problems_json(&errors));
            }
            Ok(ExitCode::from(1))
        }
    }
}

/// Prints config diagnostics on stderr: colours and the terminal's width on a terminal;
/// plain, fixed-width text otherwise. Other commands that load a config (`up`, `plan`)
/// print its errors the same way.
pub fn print_diagnostics(diags: &ConfigErrors) {
    if std::io::stderr().is_terminal() {
        eprintln!("{:?}", miette::Report::new(diags.clone()));
    } else {
        eprint!("{}", diags.render_plain(PLAIN_WIDTH));
    }
}

fn problems_json(errors: &ConfigErrors) -> String {
    let items: Vec<serde_json::Value> = errors
        .items()
        .iter()
        .map(|e| {
            serde_json::json!({
                "severity": match e.severity {
                    miette::Severity::Warning => "warning",
                    miette::Severity::Advice => "advice",
                    miette::Severity::Error => "error",
                },
                "file": e.file.display().to_string(),
                "line": e.line,
                "column": e.column,
                "message": e.message,
                "help": e.help,
            })
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({ "problems": items }))
        .unwrap_or_else(|_| "{}".into())
}

/// What the config describes, for a person: jails in dependency order, forwards, mounts,
/// services and setup steps. `shown` is the config path as the user wrote it.
pub fn summary(config: &Config, shown: &Path) -> String {
    let dir = config.path.parent().unwrap_or(Path::new("/"));
    let rel = |p: &Path| match p.strip_prefix(dir) {
        Ok(r) if r.as_os_str().is_empty() => ".".to_string(),
        Ok(r) => format!("./{}", r.display()),
        Err(_) => p.display().to_string(),
    };
    let mut out = String::new();
    let n = config.jails.len();
    let _ = writeln!(
        out,
        "{} is valid: {n} jail{}{}",
        shown.display(),
        if n == 1 { "" } else { "s" },
        if config.base.is_some() {
            " and a base block"
        } else {
            ""
        }
    );

    let order = config::dependency_order(config);
    if !order.is_empty() {
        let names: Vec<&str> = order.iter().map(|n| n.as_str()).collect();
        let _ = writeln!(out, "\nOrder: {}", names.join(" → "));
        let _ = writeln!(out, "\nJails:");
        for name in &order {
            let Some(j) = config.jail(name.as_str()) else {
                continue;
            };
            let mut facts = vec![match j.ip {
                Some(ip) => format!("ip {ip}"),
                None => "ip assigned on up".to_string(),
            }];
            if let Some(r) = &j.release {
                facts.push(format!("release {r}"));
            }
            if let Some(b) = &j.base {
                facts.push(format!("cloned from {b}"));
            }
            if !j.depends.is_empty() {
                let d: Vec<&str> = j.depends.iter().map(|d| d.as_str()).collect();
                facts.push(format!("after {}", d.join(", ")));
            }
            let _ = writeln!(out, "  {:<16} {}", j.name.as_str(), facts.join("; "));
        }
    }

    let mut lines = Vec::new();
    if let Some(base) = &config.base {
        for f in &base.forwards {
            lines.push(format!(
                "{} 127.0.0.1:{} → vm:{}  (base {})",
                f.proto, f.host, f.target, f.name
            ));
        }
    }
    for j in &config.jails {
        for f in &j.forwards {
            lines.push(format!(
                "{} 127.0.0.1:{} → {}:{}  ({})",
                f.proto, f.host, j.name, f.jail, f.name
            ));
        }
    }
    section(&mut out, "Forwards", &lines);

    let mut lines = Vec::new();
    if let Some(base) = &config.base {
        for m in &base.mounts {
            lines.push(format!(
                "{} → vm:{}  (base {})",
                rel(&m.host),
                m.target.display(),
                m.name
            ));
        }
    }
    for j in &config.jails {
        for m in &j.mounts {
            lines.push(format!(
                "{} → {}:{}  ({})",
                rel(&m.host),
                j.name,
                m.jail.display(),
                m.name
            ));
        }
    }
    section(&mut out, "Mounts", &lines);

    let mut lines = Vec::new();
    for j in &config.jails {
        for e in &j.execs {
            let mut line = format!("{}/{}: {}", j.name, e.name, e.cmd);
            if let Some(d) = &e.dir {
                let _ = write!(line, "  (in {d})");
            }
            if !e.env.is_empty() {
                let keys: Vec<&str> = e.env.keys().map(String::as_str).collect();
                let _ = write!(line, "  env {}", keys.join(" "));
            }
            if let Some(h) = &e.healthcheck {
                let _ = write!(
                    line,
                    "\n      health: `{}` every {}, timeout {}, restart after {} failure{}",
                    h.test,
                    duration(h.interval),
                    duration(h.timeout),
                    h.retries,
                    if h.retries == 1 { "" } else { "s" }
                );
            }
            lines.push(line);
        }
    }
    section(&mut out, "Services", &lines);

    let mut lines = Vec::new();
    let base_steps = config
        .base
        .iter()
        .flat_map(|b| b.setup.iter().map(|s| ("vm".to_string(), s)));
    let jail_steps = config
        .jails
        .iter()
        .flat_map(|j| j.setup.iter().map(move |s| (j.name.to_string(), s)));
    for (owner, s) in base_steps.chain(jail_steps) {
        let kind = match s.kind {
            SetupKind::Ansible => "ansible",
            SetupKind::Shell => "shell",
        };
        let source = match &s.source {
            SetupSource::File(p) => rel(p),
            SetupSource::Url(u) => u.clone(),
        };
        let mut line = format!("{owner}/{}: {kind} {source}", s.name);
        if !s.vars.is_empty() {
            let keys: Vec<&str> = s.vars.keys().map(String::as_str).collect();
            let _ = write!(line, "  vars {}", keys.join(" "));
        }
        lines.push(line);
    }
    section(&mut out, "Setup", &lines);
    out
}

fn section(out: &mut String, title: &str, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{title}:");
    for l in lines {
        let _ = writeln!(out, "  {l}");
    }
}

/// `30s`, `1m30s`, `500ms`.
fn duration(d: Duration) -> String {
    if d.subsec_millis() != 0 || d.as_secs() == 0 {
        return format!("{}ms", d.as_millis());
    }
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(Duration::from_secs(30)), "30s");
        assert_eq!(duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(duration(Duration::from_secs(120)), "2m");
        assert_eq!(duration(Duration::from_millis(500)), "500ms");
        assert_eq!(duration(Duration::from_secs(3600)), "1h0m0s");
    }
}
