//! Text output: aligned tables, times, and cells made safe for a terminal.

use std::{io::Write, time::SystemTime};

use shared::verify::Scheme;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

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
