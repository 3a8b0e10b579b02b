//! Links and sessions on in-memory adapters.

use std::time::Duration;

use super::*;
use crate::{
    clock::ManualClock,
    memory::{HmacLinkSigner, MemoryPortalStore},
};

type Access = PortalAccess<MemoryPortalStore, HmacLinkSigner, ManualClock>;

fn access(key: &[u8]) -> Access {
    PortalAccess::new(
        MemoryPortalStore::new(),
        HmacLinkSigner(key.to_vec()),
        ManualClock::at_unix(1_750_000_000),
    )
}

const READ_ONLY: Grant = Grant {
    read_only: true,
    operator: false,
};

fn acme() -> TenantId {
    TenantId::parse("acme").expect("tenant")
}

#[tokio::test]
async fn a_link_opens_one_session_for_its_tenant_once() {
    let p = access(b"portal key");
    let token = p
        .link(&acme(), Grant::default(), DEFAULT_TTL)
        .await
        .expect("link");

    let session = p.exchange(&token).await.expect("session");

    assert_eq!(session.tenant, acme());
    assert!(!session.read_only);
    assert_eq!(session.id.len(), 64);
    assert_ne!(session.id, session.csrf);
    assert_eq!(
        p.session(&session.id).await.expect("read"),
        Some(session.clone())
    );
    assert_eq!(p.exchange(&token).await, Err(PortalError::Used));
}

#[tokio::test]
async fn an_expired_forged_or_mangled_link_opens_nothing() {
    let p = access(b"portal key");
    let token = p
        .link(&acme(), READ_ONLY, Duration::from_secs(600))
        .await
        .expect("link");
    let (payload, mac) = token.split_once('.').expect("two parts");

    // Signed by another deployment's key.
    let other = access(b"another key")
        .link(&acme(), Grant::default(), DEFAULT_TTL)
        .await
        .expect("link");
    assert_eq!(p.exchange(&other).await, Err(PortalError::BadSignature));
    // The claims changed (read-only lifted, tenant swapped) under the old MAC.
    let forged = URL_SAFE_NO_PAD.encode(
        String::from_utf8(URL_SAFE_NO_PAD.decode(payload).expect("b64"))
            .expect("utf8")
            .replace("\"read_only\":true", "\"read_only\":false"),
    );
    assert_eq!(
        p.exchange(&format!("{forged}.{mac}")).await,
        Err(PortalError::BadSignature)
    );
    for mangled in [
        "",
        "abc",
        ".",
        "x.y",
        &format!("{payload}."),
        &format!(".{mac}"),
    ] {
        assert!(
            matches!(
                p.exchange(mangled).await,
                Err(PortalError::Malformed | PortalError::BadSignature)
            ),
            "{mangled:?}"
        );
    }
    // Too late.
    p.clock.advance(Duration::from_secs(601));
    assert_eq!(p.exchange(&token).await, Err(PortalError::Expired));
}

#[tokio::test]
async fn a_session_ends_when_its_link_said_and_on_sign_out() {
    let p = access(b"portal key");
    let token = p
        .link(&acme(), READ_ONLY, Duration::from_secs(600))
        .await
        .expect("link");
    let session = p.exchange(&token).await.expect("session");
    assert!(session.read_only);

    p.clock.advance(Duration::from_secs(599));
    assert!(p.session(&session.id).await.expect("read").is_some());
    p.clock.advance(Duration::from_secs(2));
    assert_eq!(p.session(&session.id).await.expect("read"), None);

    let again = p
        .exchange(
            &p.link(&acme(), Grant::default(), DEFAULT_TTL)
                .await
                .expect("link"),
        )
        .await
        .expect("session");
    p.sign_out(&again).await.expect("signed out");
    assert_eq!(p.session(&again.id).await.expect("read"), None);
    // Cookies that are not session ids are no session, without a read.
    assert_eq!(p.session("../../etc").await.expect("read"), None);
}

#[tokio::test]
async fn ttls_are_bounded_and_csrf_tokens_compare_exactly() {
    let p = access(b"portal key");
    assert_eq!(
        p.link(&acme(), Grant::default(), Duration::from_secs(30))
            .await,
        Err(PortalError::BadTtl)
    );
    assert_eq!(
        p.link(&acme(), Grant::default(), MAX_TTL + Duration::from_secs(1))
            .await,
        Err(PortalError::BadTtl)
    );
    let session = p
        .exchange(
            &p.link(&acme(), Grant::default(), DEFAULT_TTL)
                .await
                .expect("link"),
        )
        .await
        .expect("session");
    assert!(session.csrf_matches(&session.csrf.clone()));
    assert!(!session.csrf_matches(""));
    assert!(!session.csrf_matches(&session.csrf[1..]));
}

/// A link with `claims`, MAC'd by the deployment's own key (as a leaked or mis-issued link would
/// be).
async fn signed(p: &Access, claims: &LinkClaims) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("json"));
    let mac = p.signer.mac(payload.as_bytes()).await.expect("mac");
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac))
}

#[tokio::test]
async fn a_link_claiming_to_live_past_a_day_opens_nothing_whoever_signed_it() {
    let p = access(b"portal key");
    let now = unix(p.clock.now());
    let claims = |expires_at: u64| LinkClaims {
        tenant: "acme".into(),
        read_only: false,
        operator: true,
        expires_at,
        session_secs: 3_600,
        nonce: format!("n{expires_at}"),
    };
    for expires_at in [now + 30 * 24 * 3_600, now + MAX_TTL.as_secs() + 1, u64::MAX] {
        let token = signed(&p, &claims(expires_at)).await;
        assert_eq!(
            p.exchange(&token).await,
            Err(PortalError::BadTtl),
            "{expires_at}"
        );
    }
    let token = signed(&p, &claims(now + MAX_TTL.as_secs())).await;
    assert!(
        p.exchange(&token).await.is_ok(),
        "a day is the longest, and allowed"
    );
}

#[tokio::test]
async fn the_store_keeps_neither_the_session_id_nor_its_csrf_token() {
    let p = access(b"portal key");
    let token = p
        .link(&acme(), Grant::default(), DEFAULT_TTL)
        .await
        .expect("link");
    let session = p.exchange(&token).await.expect("session");

    let keys = p.store.session_keys();
    assert_eq!(keys, [session_key(&session.id)]);
    for kept in &keys {
        assert!(!kept.contains(&session.id) && !kept.contains(&session.csrf));
    }
    // The cookie alone finds the session and its token again; the stored key finds nothing.
    let found = p.session(&session.id).await.expect("read").expect("live");
    assert_eq!(found.csrf, session.csrf);
    assert_eq!(p.session(&keys[0]).await.expect("read"), None);
}
