//! Output: for people (aligned tables, times, cells made safe for a terminal) or, with
//! `--output json`, one JSON document per command for scripts.

use std::{io::Write, time::SystemTime};

use serde::Serialize;
use shared::verify::Scheme;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::CliError;

/// How a command prints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Tables and aligned fields, for people.
    #[default]
    Text,
    /// One JSON document, with the field names documented in the README, for scripts.
    Json,
}

/// Where a command prints, and how.
pub struct Out<'a> {
    writer: &'a mut dyn Write,
    pub format: Format,
}

impl<'a> Out<'a> {
    pub fn new(writer: &'a mut dyn Write, format: Format) -> Self {
        Self { writer, format }
    }

    /// Text output, as the tests of the text forms use.
    pub fn text(writer: &'a mut dyn Write) -> Self {
        Self::new(writer, Format::Text)
    }

    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// Print `value` as the command's one JSON document.
    pub fn document(&mut self, value: &impl Serialize) -> Result<(), CliError> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| CliError::Outbound(format!("cannot print JSON: {e}")))?;
        writeln!(self.writer, "{text}")?;
        Ok(())
    }
}

impl std::fmt::Debug for Out<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Out").field("format", &self.format).finish()
    }
}

impl Write for Out<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }
}

/// The scheme's name as the README's table calls it.
pub fn scheme_name(scheme: &Scheme) -> &'static str {
    match scheme {
        Scheme::Stripe => "stripe",
        Scheme::StandardWebhooks => "standard-webhooks",
        Scheme::GitHub => "github",
        Scheme::Slack => "slack",
        Scheme::Shopify => "shopify",
        Scheme::Generic(_) => "generic",
        Scheme::Twilio => "twilio",
        Scheme::Circle => "circle",
        Scheme::PayPal => "paypal",
        Scheme::GoogleOidc => "google-oidc",
        Scheme::Braintree => "braintree",
        Scheme::Declared(declaration) => declaration.name,
    }
}

/// UTC, whole seconds, RFC 3339 (`2024-05-01T12:00:00Z`).
pub fn timestamp(t: SystemTime) -> String {
    let utc = OffsetDateTime::from(t);
    let whole = utc.replace_nanosecond(0).unwrap_or(utc);
    whole
        .format(&Rfc3339)
        .unwrap_or_else(|_| format!("{}s after the epoch", whole.unix_timestamp()))
}

/// Text that came from outside (a payload's event type, an error message) with control
/// characters escaped, so it cannot move the cursor or recolour an operator's terminal.
pub fn sanitize(text: &str) -> String {
    sanitize_keeping(text, &[])
}

/// [`sanitize`], keeping the listed control characters (newlines in a printed payload).
pub fn sanitize_keeping(text: &str, keep: &[char]) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && !keep.contains(&c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Write rows under a header, columns padded to their widest cell.
pub fn table<const N: usize>(
    out: &mut dyn Write,
    header: [&str; N],
    rows: &[[String; N]],
) -> std::io::Result<()> {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: [&str; N]| -> std::io::Result<()> {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, header)?;
    for row in rows {
        line(out, row.each_ref().map(String::as_str))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn times_are_utc_whole_seconds() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        assert_eq!(timestamp(t), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            sanitize("invoice.paid\u{1b}[31m\n"),
            "invoice.paid\\u{1b}[31m\\n"
        );
        assert_eq!(sanitize_keeping("a\nb\u{7}", &['\n']), "a\nb\\u{7}");
    }

    #[test]
    fn tables_align_columns() {
        let mut out = Vec::new();
        table(
            &mut out,
            ["A", "BB", "C"],
            &[
                ["xxx".into(), "y".into(), "z".into()],
                ["x".into(), "yyy".into(), "".into()],
            ],
        )
        .expect("writes");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "A    BB   C\nxxx  y    z\nx    yyy\n"
        );
    }
}
