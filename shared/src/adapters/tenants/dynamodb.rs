//! Tenants' provider configurations in DynamoDB: one item per (`tenant`, `provider`).
//!
//! Secrets are sealed by the application ([`crate::sealing`]) before they reach the item, with
//! the tenant, provider and field as their context: a scan or a restored backup shows no secret,
//! and a sealed value copied to another tenant's item does not open. An unsigned route's token
//! is stored only as its SHA-256. Each item carries a `version`; every write is conditioned on
//! it, so concurrent operators never silently undo each other. Errors name attributes only.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    Client,
    types::{AttributeValue, Select},
};

use crate::{
    adapters::dynamodb::{
        expression::is_conditional_failure,
        item::{
            Item, ItemError, boolean, ms, n, number, opt_millis, opt_number, opt_string, parsed,
            put_opt, s,
        },
        unavailable,
    },
    clock::{from_unix_millis, unix_millis},
    ids::TenantId,
    ports::{StoreError, TenantAdmin, TenantDirectory, TenantNames},
    provider::Provider,
    sealing::{Envelope, KeyService, SealContext, SealError, Sealed},
    secret::{PreviousSecret, Secret, SecretSet},
    tenant::{ProviderConfig, TokenDigest, UnsignedPolicy},
    verify::{GenericHeaders, PublicKey, PublicKeys},
};

/// The sealed fields, by attribute name.
const CURRENT: &str = "secret_current";
const PREVIOUS: &str = "secret_previous";
const PUBLIC_KEYS: &str = "public_keys";

/// One public key as sealed in `public_keys` (a JSON list).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredKey {
    id: String,
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<i64>,
}

fn keys_to_json(keys: &PublicKeys) -> String {
    let stored: Vec<StoredKey> = keys
        .iter()
        .map(|k| StoredKey {
            id: k.id.clone(),
            key: k.encoded.clone(),
            expires_at_ms: k.expires_at.map(unix_millis),
        })
        .collect();
    serde_json::to_string(&stored).unwrap_or_else(|_| "[]".to_owned())
}

fn keys_from_json(text: &str) -> Result<PublicKeys, ItemError> {
    let stored: Vec<StoredKey> =
        serde_json::from_str(text).map_err(|_| ItemError::Invalid(PUBLIC_KEYS))?;
    Ok(PublicKeys::new(stored.into_iter().map(|k| {
        let key = PublicKey::new(k.id, k.key);
        match k.expires_at_ms {
            Some(ms) => key.expiring(from_unix_millis(ms)),
            None => key,
        }
    })))
}

/// [`TenantDirectory`] and [`TenantAdmin`] on the tenants table.
#[derive(Clone)]
pub struct DynamoTenantDirectory {
    client: Client,
    table: String,
    envelope: Envelope<Arc<dyn KeyService>>,
}

impl std::fmt::Debug for DynamoTenantDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoTenantDirectory")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl DynamoTenantDirectory {
    /// `keys` seals (the operator's path) and opens (the ingress) the secrets.
    pub fn new(client: Client, table: impl Into<String>, keys: Arc<dyn KeyService>) -> Self {
        Self {
            client,
            table: table.into(),
            envelope: Envelope::new(keys),
        }
    }

    async fn seal(
        &self,
        secret: &Secret,
        config: &ProviderConfig,
        field: &str,
    ) -> Result<Sealed, StoreError> {
        self.envelope
            .seal(
                secret.expose().as_bytes(),
                &context(config.tenant.clone(), config.provider, field),
            )
            .await
            .map_err(sealing_error)
    }

    async fn open(
        &self,
        item: &Item,
        field: &'static str,
        tenant: &TenantId,
        provider: Provider,
    ) -> Result<Option<Secret>, StoreError> {
        let Some(text) = opt_string(item, field)? else {
            return Ok(None);
        };
        // A secret stored before sealing existed is refused rather than trusted: re-add it.
        let sealed = Sealed::from_stored(text).map_err(|_| ItemError::Invalid(field))?;
        let plain = self
            .envelope
            .open(&sealed, &context(tenant.clone(), provider, field))
            .await
            .map_err(sealing_error)?;
        let text = String::from_utf8(plain).map_err(|_| ItemError::Invalid(field))?;
        Ok(Some(Secret::new(text)))
    }

    /// The item for `config` as its next version, secrets sealed.
    async fn seal_item(
        &self,
        config: &ProviderConfig,
        updated_at: SystemTime,
    ) -> Result<Item, StoreError> {
        let mut item = plain_attributes(config, updated_at);
        item.insert(
            CURRENT.into(),
            s(self
                .seal(&config.secrets.current, config, CURRENT)
                .await?
                .as_str()),
        );
        if let Some(previous) = &config.secrets.previous {
            item.insert(
                PREVIOUS.into(),
                s(self
                    .seal(&previous.secret, config, PREVIOUS)
                    .await?
                    .as_str()),
            );
        }
        if config.public_keys.iter().next().is_some() {
            let keys = Secret::new(keys_to_json(&config.public_keys));
            let sealed = self.seal(&keys, config, PUBLIC_KEYS).await?;
            item.insert(PUBLIC_KEYS.into(), s(sealed.as_str()));
        }
        Ok(item)
    }

    async fn open_item(&self, item: &Item) -> Result<ProviderConfig, StoreError> {
        let tenant: TenantId = parsed(item, "tenant")?;
        let provider: Provider = parsed(item, "provider")?;
        let current = self
            .open(item, CURRENT, &tenant, provider)
            .await?
            .ok_or(ItemError::Missing(CURRENT))?;
        let previous = self.open(item, PREVIOUS, &tenant, provider).await?;
        let keys = match self.open(item, PUBLIC_KEYS, &tenant, provider).await? {
            Some(json) => keys_from_json(json.expose())?,
            None => PublicKeys::default(),
        };
        let mut config = config_from_item(item, current, previous)?;
        config.public_keys = keys;
        Ok(config)
    }
}

/// Where a secret of `tenant`'s `provider` configuration belongs.
fn context(tenant: TenantId, provider: Provider, field: &str) -> SealContext {
    SealContext::new(&tenant, provider.as_str(), field)
}

/// A key service that cannot seal or open is a dependency failure (503 at the ingress), not a
/// malformed item; a value that does not open in its context is.
pub(crate) fn sealing_error(e: SealError) -> StoreError {
    match e {
        SealError::Unavailable(_) | SealError::Refused(_) => {
            StoreError::Unavailable(format!("sealing: {e}"))
        }
        SealError::Malformed(_) | SealError::WrongContext => {
            StoreError::Malformed(format!("sealed secret: {e}"))
        }
    }
}

/// Every attribute but the sealed secrets; `version` is the one this write makes, and
/// `updated_at` is for operators only, never read back.
pub(crate) fn plain_attributes(config: &ProviderConfig, updated_at: SystemTime) -> Item {
    let mut item = Item::from([
        ("tenant".to_owned(), s(config.tenant.as_str())),
        ("provider".to_owned(), s(config.provider.as_str())),
        ("tolerance_secs".to_owned(), n(config.tolerance.as_secs())),
        (
            "allow_unsigned".to_owned(),
            AttributeValue::Bool(matches!(config.unsigned, UnsignedPolicy::Allow { .. })),
        ),
        ("version".to_owned(), n(config.version + 1)),
        ("updated_at".to_owned(), ms(updated_at)),
    ]);
    if let Some(previous) = &config.secrets.previous {
        item.insert("previous_expires_at".into(), ms(previous.expires_at));
    }
    if let UnsignedPolicy::Allow { token_digest } = &config.unsigned {
        item.insert("unsigned_token_sha256".into(), s(token_digest.to_hex()));
    }
    if let Some(names) = &config.generic_headers {
        item.insert("generic_signature_header".into(), s(&names.signature));
        item.insert("generic_timestamp_header".into(), s(&names.timestamp));
        put_opt(&mut item, "generic_id_header", names.id.as_deref().map(s));
    }
    put_opt(
        &mut item,
        "public_base_url",
        config.public_base_url.as_deref().map(s),
    );
    put_opt(
        &mut item,
        "paypal_webhook_id",
        config.paypal_webhook_id.as_deref().map(s),
    );
    item
}

/// The configuration an item describes, given its opened secrets.
pub(crate) fn config_from_item(
    item: &Item,
    current: Secret,
    previous_secret: Option<Secret>,
) -> Result<ProviderConfig, ItemError> {
    let previous = match (previous_secret, opt_millis(item, "previous_expires_at")?) {
        (Some(secret), Some(expires_at)) => Some(PreviousSecret { secret, expires_at }),
        (None, None) => None,
        // Half a rotation: refuse rather than guess how long the old secret should live.
        (Some(_), None) => return Err(ItemError::Missing("previous_expires_at")),
        (None, Some(_)) => return Err(ItemError::Missing(PREVIOUS)),
    };
    let unsigned = if boolean(item, "allow_unsigned")? {
        let digest = opt_string(item, "unsigned_token_sha256")?
            .ok_or(ItemError::Missing("unsigned_token_sha256"))?;
        UnsignedPolicy::Allow {
            token_digest: TokenDigest::from_hex(digest)
                .ok_or(ItemError::Invalid("unsigned_token_sha256"))?,
        }
    } else {
        // A digest left behind after unsigned deliveries were turned off grants nothing.
        UnsignedPolicy::Refuse
    };
    let id_header = opt_string(item, "generic_id_header")?;
    let generic_headers = match (
        opt_string(item, "generic_signature_header")?,
        opt_string(item, "generic_timestamp_header")?,
    ) {
        (Some(signature), Some(timestamp)) => Some(GenericHeaders {
            signature: signature.to_owned(),
            timestamp: timestamp.to_owned(),
            id: id_header.map(str::to_owned),
        }),
        (None, None) if id_header.is_none() => None,
        (None, _) => return Err(ItemError::Missing("generic_signature_header")),
        (Some(_), None) => return Err(ItemError::Missing("generic_timestamp_header")),
    };
    Ok(ProviderConfig {
        tenant: parsed(item, "tenant")?,
        provider: parsed(item, "provider")?,
        secrets: SecretSet { current, previous },
        tolerance: Duration::from_secs(number(item, "tolerance_secs")?),
        unsigned,
        generic_headers,
        public_base_url: opt_string(item, "public_base_url")?.map(str::to_owned),
        // Sealed: read by the caller, which opens it.
        public_keys: PublicKeys::default(),
        paypal_webhook_id: opt_string(item, "paypal_webhook_id")?.map(str::to_owned),
        version: opt_number(item, "version")?.unwrap_or(0),
    })
}

#[async_trait]
impl TenantDirectory for DynamoTenantDirectory {
    async fn provider_config(
        &self,
        tenant: &TenantId,
        provider: Provider,
    ) -> Result<Option<ProviderConfig>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("tenant", s(tenant.as_str()))
            .key("provider", s(provider.as_str()))
            // A rotation or a policy change applies from the next delivery on.
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| unavailable("GetItem", &self.table, &err))?;
        let Some(item) = output.item() else {
            return Ok(None);
        };
        let config = self.open_item(item).await?;
        if &config.tenant != tenant || config.provider != provider {
            return Err(StoreError::Malformed(
                "attributes `tenant`/`provider` disagree with the item's key".into(),
            ));
        }
        Ok(Some(config))
    }
}

#[async_trait]
impl TenantAdmin for DynamoTenantDirectory {
    async fn put_config(&self, config: &ProviderConfig) -> Result<(), StoreError> {
        // A whole-item put: attributes of a previous configuration (an old token digest, a
        // previous secret) cannot linger.
        let item = self.seal_item(config, SystemTime::now()).await?;
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let request = if config.version == 0 {
            request
                .condition_expression("attribute_not_exists(#tenant)")
                .expression_attribute_names("#tenant", "tenant")
        } else {
            request
                .condition_expression("#version = :read")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":read", n(config.version))
        };
        match request.send().await {
            Ok(_) => Ok(()),
            Err(err) if is_conditional_failure(&err) => Err(config.write_conflict()),
            Err(err) => Err(unavailable("PutItem", &self.table, &err)),
        }
    }

    async fn list_configs(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<ProviderConfig>, StoreError> {
        let items: Vec<Item> = match tenant {
            Some(tenant) => self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#tenant = :tenant")
                .expression_attribute_names("#tenant", "tenant")
                .expression_attribute_values(":tenant", s(tenant.as_str()))
                .consistent_read(true)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|err| unavailable("Query", &self.table, &err))?,
            None => self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|err| unavailable("Scan", &self.table, &err))?,
        };
        let mut configs = Vec::with_capacity(items.len());
        for item in &items {
            configs.push(self.open_item(item).await?);
        }
        Ok(configs)
    }
}

/// Tenant names from the tenants table, reading only the `tenant` attribute (never secrets).
#[derive(Debug, Clone)]
pub struct DynamoTenantNames {
    client: Client,
    table: String,
}

impl DynamoTenantNames {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl TenantNames for DynamoTenantNames {
    async fn tenant_ids(&self) -> Result<Vec<TenantId>, StoreError> {
        let mut tenants = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.table)
                .projection_expression("#tenant")
                .expression_attribute_names("#tenant", "tenant")
                .select(Select::SpecificAttributes)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|err| unavailable("Scan", &self.table, &err))?;
            for item in output.items() {
                tenants.push(parsed::<TenantId>(item, "tenant")?);
            }
            start = output.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        tenants.sort();
        tenants.dedup();
        Ok(tenants)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{adapters::keys::MemoryKeys, clock::from_unix_millis};

    fn config() -> ProviderConfig {
        ProviderConfig::new(
            TenantId::parse("acme").expect("tenant"),
            Provider::Stripe,
            Secret::new("whsec_current"),
        )
    }

    fn rotated_generic_unsigned() -> ProviderConfig {
        let mut c = config();
        c.provider = Provider::Generic;
        c.rotate(
            Secret::new("whsec_next"),
            from_unix_millis(1_700_000_000_000),
            Duration::from_secs(3_600),
        );
        c.tolerance = Duration::from_secs(600);
        c.unsigned = UnsignedPolicy::Allow {
            token_digest: TokenDigest::of("tok_0123456789abcdef"),
        };
        c.generic_headers = Some(GenericHeaders {
            signature: "x-sig".into(),
            timestamp: "x-ts".into(),
            id: None,
        });
        c.version = 4;
        c
    }

    fn updated() -> SystemTime {
        from_unix_millis(1_700_000_000_500)
    }

    /// The configuration read back from `c`'s item, its secrets as given.
    fn read_back(item: &Item, c: &ProviderConfig) -> Result<ProviderConfig, ItemError> {
        config_from_item(
            item,
            c.secrets.current.clone(),
            c.secrets.previous.as_ref().map(|p| p.secret.clone()),
        )
    }

    /// A directory whose client is never called: sealing and opening need only the keys.
    fn directory() -> DynamoTenantDirectory {
        let client = Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version_latest()
                .build(),
        );
        DynamoTenantDirectory::new(client, "tenants", Arc::new(MemoryKeys::new()))
    }

    #[test]
    fn configs_round_trip_as_their_next_version() {
        let mut with_id = rotated_generic_unsigned();
        with_id.generic_headers = Some(GenericHeaders::default());
        for c in [config(), rotated_generic_unsigned(), with_id] {
            let back = read_back(&plain_attributes(&c, updated()), &c).expect("valid");
            assert_eq!(back.version, c.version + 1);
            assert_eq!(
                ProviderConfig {
                    version: c.version,
                    ..back
                },
                c
            );
        }
    }

    #[test]
    fn the_item_holds_the_documented_attributes_and_no_token() {
        let item = plain_attributes(&rotated_generic_unsigned(), updated());
        assert_eq!(item["tenant"], s("acme"));
        assert_eq!(item["provider"], s("generic"));
        assert_eq!(item["previous_expires_at"], n(1_700_003_600_000_i64));
        assert_eq!(item["tolerance_secs"], n(600));
        assert_eq!(item["allow_unsigned"], AttributeValue::Bool(true));
        assert_eq!(item["version"], n(5));
        assert_eq!(
            item["unsigned_token_sha256"],
            s(TokenDigest::of("tok_0123456789abcdef").to_hex())
        );
        assert_eq!(item["updated_at"], n(1_700_000_000_500_i64));
        assert!(!item.contains_key("generic_id_header"));
        let text = format!("{item:?}");
        assert!(!text.contains("tok_0123456789abcdef") && !text.contains("whsec"));
    }

    #[tokio::test]
    async fn secrets_are_sealed_in_the_item_and_open_only_in_their_own() {
        let directory = directory();
        let c = rotated_generic_unsigned();
        let item = directory.seal_item(&c, updated()).await.expect("sealed");
        assert!(
            !format!("{item:?}").contains("whsec"),
            "no secret in the item"
        );
        let back = directory.open_item(&item).await.expect("opens");
        assert_eq!(back.secrets, c.secrets);

        // A sealed secret copied into another tenant's (or provider's) item does not open.
        let mut theirs = directory
            .seal_item(
                &ProviderConfig::new(
                    TenantId::parse("globex").expect("tenant"),
                    Provider::Generic,
                    Secret::new("theirs"),
                ),
                updated(),
            )
            .await
            .expect("sealed");
        theirs.insert(CURRENT.into(), item[CURRENT].clone());
        assert!(
            directory.open_item(&theirs).await.is_err(),
            "moved across tenants"
        );
        let mut swapped = item.clone();
        swapped.insert(CURRENT.into(), item[PREVIOUS].clone());
        assert!(
            directory.open_item(&swapped).await.is_err(),
            "fields are bound too"
        );
        // A secret stored in the clear (before sealing) is refused, not trusted.
        let mut clear = item.clone();
        clear.insert(CURRENT.into(), s("whsec_plain"));
        let err = directory.open_item(&clear).await.expect_err("refused");
        assert!(!err.to_string().contains("whsec"), "{err}");
    }

    #[tokio::test]
    async fn public_keys_and_provider_settings_round_trip_sealed() {
        let directory = directory();
        let mut c = config();
        c.provider = Provider::Circle;
        c.public_keys = PublicKeys::new([
            PublicKey::new("key-2", "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"),
            PublicKey::new("key-1", "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAF")
                .expiring(from_unix_millis(1_700_003_600_000)),
        ]);
        c.public_base_url = Some("https://hooks.example.com".into());
        c.paypal_webhook_id = Some("WH-1".into());
        let item = directory.seal_item(&c, updated()).await.expect("sealed");
        assert!(
            !format!("{item:?}").contains("MFkwEwYH"),
            "keys are sealed too"
        );
        let back = directory.open_item(&item).await.expect("opens");
        assert_eq!(ProviderConfig { version: 0, ..back }, c);
    }

    #[test]
    fn a_stale_digest_grants_nothing() {
        let mut item = plain_attributes(&config(), updated());
        item.insert("unsigned_token_sha256".into(), s("00".repeat(32)));
        let c = read_back(&item, &config()).expect("valid");
        assert_eq!(c.unsigned, UnsignedPolicy::Refuse);
    }

    #[test]
    fn malformed_items_are_refused_naming_the_attribute() {
        let c = rotated_generic_unsigned();
        let good = plain_attributes(&c, updated());
        let cases: [(&str, Option<AttributeValue>, ItemError); 8] = [
            (
                "previous_expires_at",
                None,
                ItemError::Missing("previous_expires_at"),
            ),
            (
                "unsigned_token_sha256",
                None,
                ItemError::Missing("unsigned_token_sha256"),
            ),
            (
                "unsigned_token_sha256",
                Some(s("abc")),
                ItemError::Invalid("unsigned_token_sha256"),
            ),
            (
                "generic_timestamp_header",
                None,
                ItemError::Missing("generic_timestamp_header"),
            ),
            (
                "tolerance_secs",
                Some(n(-5)),
                ItemError::Invalid("tolerance_secs"),
            ),
            ("tenant", Some(s("Acme")), ItemError::Invalid("tenant")),
            ("version", Some(n(-1)), ItemError::Invalid("version")),
            (
                "allow_unsigned",
                Some(s("true")),
                ItemError::WrongType {
                    attribute: "allow_unsigned",
                    expected: "BOOL",
                },
            ),
        ];
        for (name, value, expected) in cases {
            let mut item = good.clone();
            match value {
                Some(v) => item.insert(name.to_owned(), v),
                None => item.remove(name),
            };
            assert_eq!(read_back(&item, &c), Err(expected), "{name}");
        }
    }

    #[test]
    fn an_id_header_alone_is_refused() {
        let mut item = plain_attributes(&config(), updated());
        item.insert("generic_id_header".into(), s("x-id"));
        assert_eq!(
            read_back(&item, &config()),
            Err(ItemError::Missing("generic_signature_header"))
        );
    }
}
