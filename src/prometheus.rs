//! The Prometheus text exposition format (version 0.0.4), written by hand:
//! a family header (`# HELP`, `# TYPE`) then its samples.
//!
//! ```
//! use ferrows::prometheus::{Kind, TextEncoder};
//!
//! let mut out = String::new();
//! let mut text = TextEncoder::new(&mut out);
//! text.family("app_requests_total", Kind::Counter, "Requests served.");
//! text.sample("app_requests_total", &[("status", "200")], 3);
//! let expected = concat!(
//!     "# HELP app_requests_total Requests served.\n",
//!     "# TYPE app_requests_total counter\n",
//!     "app_requests_total{status=\"200\"} 3\n",
//! );
//! assert_eq!(out, expected);
//! ```

use std::fmt::Write;

/// The content type of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (names end in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// Appends families and samples to a string.
#[derive(Debug)]
pub struct TextEncoder<'a> {
    out: &'a mut String,
}

impl<'a> TextEncoder<'a> {
    /// Writes to `out`.
    pub fn new(out: &'a mut String) -> Self {
        Self { out }
    }

    /// Starts a family: its help text and type.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = write!(self.out, "# HELP {name} ");
        for c in help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
        let _ = writeln!(self.out, "\n# TYPE {name} {kind}");
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"");
                for c in value.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: u64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_help_and_label_values() {
        let mut out = String::new();
        let mut text = TextEncoder::new(&mut out);
        text.family("x", Kind::Gauge, "a \\ b\nc");
        text.sample("x", &[("a", "q\"\\\n"), ("b", "")], 0);
        assert_eq!(out, "# HELP x a \\\\ b\\nc\n# TYPE x gauge\nx{a=\"q\\\"\\\\\\n\",b=\"\"} 0\n");
    }
}
