//! Progress of long work on stderr: a spinner per jail with its current step on a terminal,
//! plain lines otherwise, nothing with `--json`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// How progress is shown.
pub enum Progress {
    Spinners {
        multi: MultiProgress,
        bars: BTreeMap<String, ProgressBar>,
    },
    /// One line per change; the last message of each key, so a repeated one is not printed.
    Lines(BTreeMap<String, String>),
    Silent,
}

impl Progress {
    /// Spinners on a terminal, lines on a pipe, silence for `--json`.
    pub fn new(json: bool) -> Self {
        if json {
            Progress::Silent
        } else if std::io::stderr().is_terminal() {
            Progress::Spinners {
                multi: MultiProgress::new(),
                bars: BTreeMap::new(),
            }
        } else {
            Progress::Lines(BTreeMap::new())
        }
    }

    /// `jail` is now at `step`. Steps carry what setup steps and guest scripts print, which
    /// a jail controls: shown with its control characters escaped.
    pub fn step(&mut self, jail: &str, step: &str) {
        let step = &*jrun_core::text::printable(step);
        match self {
            Progress::Spinners { multi, bars } => {
                let bar = bars.entry(jail.to_string()).or_insert_with(|| {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {prefix:.bold} {msg}")
                            .expect("a valid template"),
                    );
                    bar.set_prefix(jail.to_string());
                    bar.enable_steady_tick(Duration::from_millis(100));
                    bar
                });
                bar.set_message(step.to_string());
            }
            Progress::Lines(last) => {
                if last.get(jail).map(String::as_str) != Some(step) {
                    eprintln!("{jail}: {step}");
                    last.insert(jail.to_string(), step.to_string());
                }
            }
            Progress::Silent => {}
        }
    }

    /// `jail` is finished, with `outcome` ("up", "failed at firewall"…).
    pub fn done(&mut self, jail: &str, outcome: &str) {
        let outcome = &*jrun_core::text::printable(outcome);
        match self {
            Progress::Spinners { bars, .. } => {
                if let Some(bar) = bars.get(jail) {
                    bar.finish_with_message(outcome.to_string());
                }
            }
            Progress::Lines(last) => {
                last.remove(jail);
                eprintln!("{jail}: {outcome}");
            }
            Progress::Silent => {}
        }
    }
}
