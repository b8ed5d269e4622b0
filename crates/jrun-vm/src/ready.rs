//! The guest script's readiness report: after it (re)starts a jail's services it waits
//! for each (`wait_ready` in the prelude) and says `jrun-ready JAIL EXEC SECONDS` or
//! `jrun-notready JAIL EXEC SECONDS WHY…`, followed by `jrun-log LINE`s from its log.

use jrun_core::services::ServiceReady;

/// Collects the readiness lines out of a script's output.
#[derive(Debug, Default)]
pub struct ReadyLines {
    pub rows: Vec<ServiceReady>,
}

impl ReadyLines {
    /// Takes `line` if it is part of the readiness report (then it is not shown as output).
    pub fn take(&mut self, line: &str) -> bool {
        if let Some(rest) = line.strip_prefix("jrun-ready ") {
            let mut w = rest.split_whitespace();
            if let (Some(jail), Some(exec), Some(secs)) = (w.next(), w.next(), w.next()) {
                self.rows.push(ServiceReady {
                    jail: jail.into(),
                    exec: exec.into(),
                    ready: true,
                    waited_ms: secs.parse::<u64>().unwrap_or(0) * 1000,
                    error: None,
                });
                return true;
            }
        }
        if let Some(rest) = line.strip_prefix("jrun-notready ") {
            let mut w = rest.splitn(4, ' ');
            if let (Some(jail), Some(exec), Some(secs)) = (w.next(), w.next(), w.next()) {
                let why = w.next().unwrap_or("not ready").to_string();
                self.rows.push(ServiceReady {
                    jail: jail.into(),
                    exec: exec.into(),
                    ready: false,
                    waited_ms: secs.parse::<u64>().unwrap_or(0) * 1000,
                    error: Some(format!("{jail}/{exec} was not ready after {secs}s ({why})")),
                });
                return true;
            }
        }
        if let Some(log) = line.strip_prefix("jrun-log ") {
            if let Some(err) = self.rows.last_mut().and_then(|r| r.error.as_mut()) {
                if !err.contains("\n  last lines of its log:") {
                    err.push_str("\n  last lines of its log:");
                }
                err.push_str("\n    ");
                err.push_str(log);
            }
            return true;
        }
        false
    }

    /// The services that are not ready, as one message; `None` when all are.
    pub fn failure(rows: &[ServiceReady]) -> Option<String> {
        let bad: Vec<&str> = rows
            .iter()
            .filter(|r| !r.ready)
            .filter_map(|r| r.error.as_deref())
            .collect();
        (!bad.is_empty()).then(|| bad.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_becomes_rows_and_other_lines_pass_through() {
        let mut r = ReadyLines::default();
        assert!(r.take("jrun-ready web http 3"));
        assert!(!r.take("setup: installing python"));
        assert!(r.take("jrun-notready db pg 60 port 5432 does not accept connections yet"));
        assert!(r.take("jrun-log FATAL:  could not create shared memory segment"));
        assert!(r.take("jrun-log exiting"));
        assert_eq!(r.rows.len(), 2);
        assert!(r.rows[0].ready && r.rows[0].waited_ms == 3000);
        let err = r.rows[1].error.as_deref().unwrap();
        assert!(
            err.starts_with(
                "db/pg was not ready after 60s (port 5432 does not accept connections yet)"
            ),
            "{err}"
        );
        assert!(err.ends_with("\n  last lines of its log:\n    FATAL:  could not create shared memory segment\n    exiting"), "{err}");
        assert_eq!(ReadyLines::failure(&r.rows).as_deref(), Some(err));
        assert_eq!(ReadyLines::failure(&r.rows[..1]), None);
    }
}
