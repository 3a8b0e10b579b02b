//! Secrets at rest, against the emulator's DynamoDB and KMS: what a read-only principal with
//! `dynamodb:Scan` (or anyone restoring a backup) sees of the tenants table, and what a sealed
//! secret copied into another tenant's item is worth.

use aws_sdk_dynamodb::types::AttributeValue;
use shared::ports::EventStore;
use shared::{
    ids::TenantId,
    provider::Provider,
    secret::Secret,
    tenant::{ProviderConfig, TokenDigest, UnsignedPolicy},
};

use crate::support::*;

const SECRET_TEXT: &str = "whsec_scan_must_never_find_this_0123456789";
const TOKEN: &str = "7e3b1c0a9f8d4e2b6a5c7d9e1f0a2b3c7e3b1c0a9f8d4e2b6a5c7d9e1f0a2b3c";

/// Every attribute value of every item, as text, the way `aws dynamodb scan` would show them.
async fn scan_everything(stack: &Stack) -> String {
    let items = stack
        .dynamodb
        .scan()
        .table_name(stack.resources.tenants_table())
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default();
    assert!(!items.is_empty(), "the table holds the configurations");
    format!("{items:?}")
}

#[tokio::test]
async fn a_scan_of_the_tenants_table_finds_no_secret_and_deliveries_still_verify() {
    // GIVEN a tenant whose secret was rotated and whose unsigned route is allowed
    let stack = Stack::new().await;
    let mut config = ProviderConfig::new(
        TenantId::parse("acme").expect("tenant"),
        Provider::Stripe,
        Secret::new(format!("{SECRET_TEXT}_old")),
    );
    config.unsigned = UnsignedPolicy::Allow {
        token_digest: TokenDigest::of(TOKEN),
    };
    stack.add_tenant(&config).await;
    let mut rotated = config.clone();
    rotated.version = 1;
    rotated.rotate(
        Secret::new(SECRET_TEXT),
        at(NOW),
        std::time::Duration::from_secs(3_600),
    );
    stack.add_tenant(&rotated).await;

    // WHEN someone reads the whole table
    let everything = scan_everything(&stack).await;

    // THEN no secret, old or new, and no route token is in it
    for forbidden in [SECRET_TEXT, "scan_must_never", TOKEN] {
        assert!(
            !everything.contains(forbidden),
            "{forbidden} in {everything}"
        );
    }
    assert!(everything.contains("sealed:v1:"));

    // AND the ingress still verifies with both secrets through KMS
    for secret in [SECRET_TEXT.to_owned(), format!("{SECRET_TEXT}_old")] {
        let body = invoice(&format!("evt_{}", secret.len()));
        let headers = sign(&rotated, &secret, &body, NOW, "");
        let (status, answer) = call(
            &stack.ingress(),
            request("acme", "stripe", None, &headers, &body),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
    }
}

#[tokio::test]
async fn a_sealed_secret_copied_into_another_tenants_item_does_not_open() {
    // GIVEN two tenants, and someone with write access copying acme's sealed secret over
    // globex's, hoping deliveries signed with acme's secret pass as globex's
    let stack = Stack::new().await;
    stack.add_tenant(&stripe()).await;
    stack
        .add_tenant(&ProviderConfig::new(
            TenantId::parse("globex").expect("tenant"),
            Provider::Stripe,
            Secret::new("whsec_globex"),
        ))
        .await;
    let item = |tenant: &str| {
        let stack = &stack;
        let tenant = tenant.to_owned();
        async move {
            stack
                .dynamodb
                .get_item()
                .table_name(stack.resources.tenants_table())
                .key("tenant", AttributeValue::S(tenant))
                .key("provider", AttributeValue::S("stripe".into()))
                .send()
                .await
                .expect("get")
                .item
                .expect("item")
        }
    };
    let acme = item("acme").await;
    stack
        .dynamodb
        .update_item()
        .table_name(stack.resources.tenants_table())
        .key("tenant", AttributeValue::S("globex".into()))
        .key("provider", AttributeValue::S("stripe".into()))
        .update_expression("SET secret_current = :s")
        .expression_attribute_values(":s", acme["secret_current"].clone())
        .send()
        .await
        .expect("copied");

    // WHEN a delivery signed with acme's secret arrives for globex
    let body = invoice("evt_swapped");
    let headers = sign(&stripe(), SECRET, &body, NOW, "");
    let (status, _) = call(
        &stack.ingress(),
        request("globex", "stripe", None, &headers, &body),
    )
    .await;

    // THEN it is not accepted, and nothing is stored
    assert_ne!(status, 200);
    assert!(
        stack
            .store()
            .get(&shared::record::EventKey {
                tenant: TenantId::parse("globex").expect("tenant"),
                ..key("evt_swapped")
            })
            .await
            .expect("read")
            .is_none()
    );
}
