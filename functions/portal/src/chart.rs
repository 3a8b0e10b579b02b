//! The endpoint page's 24-hour chart, drawn by the server as inline SVG: an hourly bar of
//! delivered (green) over failed (red) attempts, and the success rate and latency percentiles
//! of the day beside it.

use std::time::{Duration, SystemTime};

use maud::{Markup, html};
use shared::{operations::health::Latency, outbound::delivery::Attempt};

const HOURS: usize = 24;
const WIDTH: usize = 720;
const HEIGHT: usize = 120;

/// Per hour of the last day: (succeeded, failed), oldest hour first.
fn bins(attempts: &[Attempt], now: SystemTime) -> [(u32, u32); HOURS] {
    let mut bins = [(0, 0); HOURS];
    for attempt in attempts {
        let Ok(age) = now.duration_since(attempt.at) else {
            continue;
        };
        let hour = (age.as_secs() / 3_600) as usize;
        if hour < HOURS {
            let bin = &mut bins[HOURS - 1 - hour];
            if attempt.succeeded() {
                bin.0 += 1;
            } else {
                bin.1 += 1;
            }
        }
    }
    bins
}

pub fn last_day(attempts: &[Attempt], now: SystemTime) -> Markup {
    let day: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| {
            now.duration_since(a.at)
                .is_ok_and(|age| age < Duration::from_secs(86_400))
        })
        .collect();
    let bins = bins(attempts, now);
    let peak = bins
        .iter()
        .map(|(ok, bad)| ok + bad)
        .max()
        .unwrap_or(0)
        .max(1);
    let bar = WIDTH / HOURS;
    let scale = |n: u32| (n as usize * (HEIGHT - 10)) / peak as usize;
    let succeeded = day.iter().filter(|a| a.succeeded()).count();
    let latency = Latency::of(
        day.iter()
            .map(|a| a.latency.as_secs_f64() * 1_000.0)
            .collect(),
    );
    let ms = |p: Option<f64>| format!("{:.0}", p.unwrap_or(0.0));
    html! {
        @if day.is_empty() {
            p.muted { "No attempts in the last 24 hours." }
        } @else {
            p #summary {
                strong { (format!("{:.1}", succeeded as f64 * 100.0 / day.len() as f64)) " %" }
                " delivered of " (day.len()) " attempts · latency p50 "
                (ms(latency.p50_ms)) " ms, p95 "
                (ms(latency.p95_ms)) " ms, p99 "
                (ms(latency.p99_ms)) " ms"
            }
        }
        svg #chart width="100%" height=(HEIGHT) preserveAspectRatio="none" viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label="Attempts per hour, last 24 hours" {
            line x1="0" y1=(HEIGHT - 1) x2=(WIDTH) y2=(HEIGHT - 1) stroke="#c5cad1" {}
            @for (i, (ok, bad)) in bins.iter().enumerate() {
                @let x = i * bar + 2;
                @let ok_h = scale(*ok);
                @let bad_h = scale(*bad);
                @if *ok > 0 {
                    rect x=(x) y=(HEIGHT - 1 - ok_h) width=(bar - 4) height=(ok_h) fill="#3a9d5d" {
                        title { (ok) " delivered" }
                    }
                }
                @if *bad > 0 {
                    rect x=(x) y=(HEIGHT - 1 - ok_h - bad_h) width=(bar - 4) height=(bad_h) fill="#d9534f" {
                        title { (bad) " failed" }
                    }
                }
            }
        }
        p.muted { "Each bar is one hour, the newest on the right." }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let ms = |range: std::ops::RangeInclusive<u64>| {
            Latency::of(
                range
                    .map(|n| Duration::from_millis(n).as_secs_f64() * 1_000.0)
                    .collect(),
            )
        };
        let latency = ms(1..=100);
        assert_eq!(latency.p50_ms, Some(50.0));
        assert_eq!(latency.p95_ms, Some(95.0));
        assert_eq!(latency.p99_ms, Some(99.0));
        assert_eq!(ms(1..=1).p99_ms, Some(1.0));
        assert_eq!(Latency::of(Vec::new()).p50_ms, None);
    }
}
