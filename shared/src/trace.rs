//! W3C Trace Context: the `traceparent` a request brings (or a new one) travels with an event or
//! a message, so one trace can be followed from the caller through our functions to the
//! partner's receiver. Each hop is a span of its own: a child keeps the trace id and takes a new
//! span id. The logs carry `trace_id`, `span_id` and `parent_span_id`, as OpenTelemetry's log
//! records name them.
//!
//! The header is outside the signed content (Standard Webhooks signs the id, timestamp and
//! body), so a receiver must not trust it for anything but correlation.

use std::{fmt, str::FromStr};

/// The `traceparent` header's name.
pub const HEADER: &str = "traceparent";

/// A trace id and the span that is the parent of the next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    sampled: bool,
}

impl TraceParent {
    /// A new trace, its first span ours.
    pub fn generate() -> Self {
        Self {
            trace_id: random_id(),
            span_id: random_id(),
            sampled: true,
        }
    }

    /// The next hop's context: the same trace, a new span whose parent is this one.
    #[must_use]
    pub fn child(&self) -> Self {
        Self {
            span_id: random_id(),
            ..*self
        }
    }

    /// The incoming header's context, or a new trace when there is none or it is malformed
    /// (the specification says to start over rather than refuse the request).
    pub fn continue_from(header: Option<&str>) -> Self {
        header
            .and_then(|h| h.parse::<Self>().ok())
            .map_or_else(Self::generate, |parent| parent.child())
    }

    pub fn trace_id(&self) -> String {
        hex::encode(self.trace_id)
    }

    pub fn span_id(&self) -> String {
        hex::encode(self.span_id)
    }
}

/// Random bytes for an id. A failing random source leaves zeros, and the last bit is forced,
/// so an id is never all zeros (which the specification reserves as invalid).
fn random_id<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    let _ = getrandom::fill(&mut bytes);
    if let Some(last) = bytes.last_mut() {
        *last |= 1;
    }
    bytes
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id(),
            self.span_id(),
            u8::from(self.sampled)
        )
    }
}

/// Why a `traceparent` was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a W3C traceparent")]
pub struct Malformed;

impl FromStr for TraceParent {
    type Err = Malformed;

    /// Version 00, or a later version's first four fields as the specification allows;
    /// lowercase hex; neither id all zeros.
    fn from_str(header: &str) -> Result<Self, Malformed> {
        let header = header.trim();
        let mut parts = header.split('-');
        let (Some(version), Some(trace), Some(span), Some(flags)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Malformed);
        };
        let lower_hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let rest = parts.next();
        if !lower_hex(version, 2)
            || version == "ff"
            || (version == "00" && (rest.is_some() || header.len() != 55))
            || !lower_hex(trace, 32)
            || !lower_hex(span, 16)
            || !lower_hex(flags, 2)
        {
            return Err(Malformed);
        }
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        hex::decode_to_slice(trace, &mut trace_id).map_err(|_| Malformed)?;
        hex::decode_to_slice(span, &mut span_id).map_err(|_| Malformed)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return Err(Malformed);
        }
        let flags = u8::from_str_radix(flags, 16).map_err(|_| Malformed)?;
        Ok(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_header_round_trips_and_a_child_keeps_the_trace() {
        let parent: TraceParent = VALID.parse().expect("valid");
        assert_eq!(parent.to_string(), VALID);
        assert_eq!(parent.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let child = parent.child();
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_ne!(child.span_id(), parent.span_id());
        assert_eq!(child.to_string().len(), 55);
        assert!(child.to_string().parse::<TraceParent>().is_ok());
    }

    #[test]
    fn malformed_headers_are_refused_and_a_request_without_one_starts_a_trace() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
        ] {
            assert_eq!(bad.parse::<TraceParent>(), Err(Malformed), "{bad:?}");
        }
        // A later version's first four fields are taken, as the specification asks.
        assert!(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future"
                .parse::<TraceParent>()
                .is_ok()
        );
        let continued = TraceParent::continue_from(Some(VALID));
        assert_eq!(continued.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let fresh = TraceParent::continue_from(Some("garbage"));
        assert_ne!(fresh.trace_id(), continued.trace_id());
        assert_ne!(TraceParent::generate(), TraceParent::generate());
    }
}
