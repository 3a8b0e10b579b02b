//! Signature verification per scheme at 1 KiB, 16 KiB and 256 KiB bodies, beside a plain
//! SHA-256 of the same bytes in the same run: HMAC-SHA256 hashes the body once, so a scheme's
//! throughput over the baseline's is what its parsing, framing and comparison cost (goal ≥ 0.9),
//! for the schemes with modules of their own and for four declared providers.

use std::{
    hint::black_box,
    time::{Duration, SystemTime},
};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use shared::{
    provider::Provider,
    secret::{Secret, SecretSet},
    verify::Verifier,
};

fn bench_verify(c: &mut Criterion) {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let secrets = SecretSet::single(secret.clone());
    let mut group = c.benchmark_group("verify");
    for size in [1024usize, 16 * 1024, 256 * 1024] {
        let body = vec![b'x'; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(
            BenchmarkId::new("sha256_baseline", size),
            &body,
            |b, body| b.iter(|| Sha256::digest(black_box(body))),
        );
        // Declared providers run one engine: a header hex MAC, `t=..;h1=..` fields, a prefixed
        // base64 MAC and a signed `v0:{ts}:{body}`.
        let declared = ["bitbucket", "paddle", "typeform", "zoom"]
            .map(|name| name.parse::<Provider>().expect("a declared provider"));
        for provider in [
            Provider::Stripe,
            Provider::Svix,
            Provider::GitHub,
            Provider::Slack,
            Provider::Shopify,
            Provider::Generic,
        ]
        .into_iter()
        .chain(declared)
        {
            let scheme = provider.default_scheme();
            let headers =
                to_header_map(scheme.sign(&body, &secret, now, "evt_bench").expect("sign"));
            let verifier = Verifier::new(scheme);
            group.bench_with_input(
                BenchmarkId::new(provider.as_str(), size),
                &body,
                |b, body| {
                    b.iter(|| {
                        verifier
                            .verify(black_box(body), black_box(&headers), &secrets, now)
                            .expect("valid")
                    })
                },
            );
        }
    }
    group.finish();
}

fn to_header_map(pairs: Vec<(String, String)>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("name");
        map.append(name, HeaderValue::from_str(&value).expect("value"));
    }
    map
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
