//! Diagnostics of a config file: each mistake with its file, line and column, a one-line
//! cause, labels on the offending spans and a hint — rendered by `miette`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, Severity,
    SourceCode,
};
use ucl::{Location, Span};

/// Which rule a diagnostic comes from, so that callers and tests can tell them apart
/// without matching on message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The file could not be read.
    Io,
    /// The UCL parser refused the text.
    Syntax,
    /// A key that has no meaning where it is written.
    UnknownKey,
    /// A value of the wrong type (a string where a port number belongs, …).
    WrongType,
    /// A required key is absent.
    MissingKey,
    /// A value of the right type that is not acceptable (port 0, a relative guest path, …).
    BadValue,
    /// A jail name that is not a DNS label.
    BadJailName,
    /// The same jail, or the same item of a block, declared twice.
    Duplicate,
    /// Two jails with the same static IP.
    DuplicateIp,
    /// Two forwards on one host port, or a forward on the VM's SSH port.
    PortConflict,
    /// `depends` or `base.name` naming a jail the file does not declare.
    UnknownJail,
    /// A dependency cycle between jails.
    Cycle,
    /// A host path that does not exist (a warning: the runtime checks again).
    MissingPath,
}

/// A labelled span of the source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub span: Span,
    pub text: String,
}

/// One mistake (or warning) in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub kind: ErrorKind,
    pub severity: Severity,
    /// The file as the caller named it.
    pub file: PathBuf,
    /// 1-based line and column of the first label (1:1 when there is none).
    pub line: usize,
    pub column: usize,
    /// The one-line cause.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
    /// The first label is the offending place; others point at related places.
    pub labels: Vec<Label>,
}

/// Every error (or every warning) found in one config file, with its source text so that
/// reports can show snippets.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    file: PathBuf,
    source: NamedSource<Arc<str>>,
    items: Vec<ConfigError>,
}

/// An error under construction: the loader adds labels and a hint, then places it in a file.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    kind: ErrorKind,
    severity: Severity,
    message: String,
    help: Option<String>,
    labels: Vec<Label>,
}

impl Draft {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Draft {
            kind,
            severity: Severity::Error,
            message: message.into(),
            help: None,
            labels: Vec::new(),
        }
    }

    pub(crate) fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    pub(crate) fn at(mut self, span: Span, text: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            text: text.into(),
        });
        self
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Where the draft points, for sorting in file order (unlabelled ones first).
    pub(crate) fn position(&self) -> (bool, usize) {
        self.labels
            .first()
            .map_or((false, 0), |l| (true, l.span.start()))
    }

    pub(crate) fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Places the draft in `file` (whose text is `src`), computing its line and column.
    pub(crate) fn locate(self, file: &Path, src: &str) -> ConfigError {
        let loc = self
            .labels
            .first()
            .map_or(Location { line: 1, column: 1 }, |l| {
                Location::of(src, l.span.start())
            });
        ConfigError {
            kind: self.kind,
            severity: self.severity,
            file: file.to_path_buf(),
            line: loc.line,
            column: loc.column,
            message: self.message,
            help: self.help,
            labels: self.labels,
        }
    }
}

impl ConfigErrors {
    /// Builds the collection for `file`, whose text is `src`.
    pub fn new(file: &Path, src: impl Into<Arc<str>>, items: Vec<ConfigError>) -> Self {
        ConfigErrors {
            file: file.to_path_buf(),
            source: NamedSource::new(file.display().to_string(), src.into()),
            items,
        }
    }

    /// The file these diagnostics are about.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Each diagnostic, in the order the file reads.
    pub fn items(&self) -> &[ConfigError] {
        &self.items
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// One `file:line:col: message` line per diagnostic, for logs and for tools.
    pub fn short_lines(&self) -> Vec<String> {
        self.items.iter().map(ConfigError::short).collect()
    }

    /// The full report with source snippets, without colours and at a fixed width, so that
    /// it reads the same on every terminal, in CI logs and in golden tests.
    pub fn render_plain(&self, width: usize) -> String {
        let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
            .with_width(width)
            .with_links(false);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = handler.render_report(&mut out, self);
        out
    }

    fn counts(&self) -> (usize, usize) {
        let errors = self
            .items
            .iter()
            .filter(|e| e.severity == Severity::Error)
            .count();
        (errors, self.items.len() - errors)
    }
}

impl ConfigError {
    /// `file:line:col: message`.
    pub fn short(&self) -> String {
        format!(
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Diagnostic for ConfigError {
    fn severity(&self) -> Option<Severity> {
        Some(self.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            return None;
        }
        Some(Box::new(self.labels.iter().enumerate().map(|(i, l)| {
            let len = l.span.len();
            let text = (!l.text.is_empty()).then(|| l.text.clone());
            if i == 0 {
                LabeledSpan::new_primary_with_span(text, (l.span.start(), len))
            } else {
                LabeledSpan::new_with_span(text, (l.span.start(), len))
            }
        })))
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (errors, warnings) = self.counts();
        let what = match (errors, warnings) {
            (0, w) => plural(w, "warning"),
            (e, 0) => plural(e, "error"),
            (e, w) => format!("{} and {}", plural(e, "error"), plural(w, "warning")),
        };
        write!(f, "{}: {what}", self.file.display())
    }
}

impl std::error::Error for ConfigErrors {}

impl Diagnostic for ConfigErrors {
    fn severity(&self) -> Option<Severity> {
        let (errors, _) = self.counts();
        Some(if errors == 0 {
            Severity::Warning
        } else {
            Severity::Error
        })
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source)
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(self.items.iter().map(|e| e as &dyn Diagnostic)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ConfigErrors {
        let src = "jail \"web\" {\n  forwrd { }\n}\n";
        let start = src.find("forwrd").unwrap();
        let e = Draft::new(ErrorKind::UnknownKey, "jail `web`: unknown key `forwrd`")
            .at(Span::new(start, start + 6), "not a key of a jail")
            .help("did you mean `forward`?")
            .locate(Path::new("stack.ucl"), src);
        ConfigErrors::new(Path::new("stack.ucl"), src, vec![e])
    }

    #[test]
    fn locates_and_summarises() {
        let errs = sample();
        let e = &errs.items()[0];
        assert_eq!((e.line, e.column), (2, 3));
        assert_eq!(
            errs.short_lines(),
            ["stack.ucl:2:3: jail `web`: unknown key `forwrd`"]
        );
        assert_eq!(errs.to_string(), "stack.ucl: 1 error");
    }

    #[test]
    fn renders_snippet_label_and_help() {
        let out = sample().render_plain(80);
        assert!(out.contains("[stack.ucl:2:3]"), "{out}");
        assert!(out.contains("not a key of a jail"), "{out}");
        assert!(out.contains("help: did you mean `forward`?"), "{out}");
    }
}
