//! Tenants' provider configurations in DynamoDB: one item per (`tenant`, `provider`), secrets
//! included. Errors name attributes only, so a secret can never reach a log line through them.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    Client,
    types::{AttributeValue, Select},
};

use crate::adapters::dynamodb::{
    item::{
        Item, ItemError, boolean, ms, n, number, opt_millis, opt_string, parsed, put_opt, s, string,
    },
    unavailable,
};
use crate::{
    ids::TenantId,
    ports::{StoreError, TenantAdmin, TenantDirectory, TenantNames},
    provider::Provider,
    secret::{PreviousSecret, Secret, SecretSet},
    tenant::{ProviderConfig, UnsignedPolicy},
    verify::GenericHeaders,
};

/// [`TenantDirectory`] and [`TenantAdmin`] on the tenants table.
#[derive(Debug, Clone)]
pub struct DynamoTenantDirectory {
    client: Client,
    table: String,
}

impl DynamoTenantDirectory {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

/// The item for `config`; `updated_at` is for operators only, never read back.
pub(crate) fn config_to_item(config: &ProviderConfig, updated_at: SystemTime) -> Item {
    let mut item = Item::from([
        ("tenant".to_owned(), s(config.tenant.as_str())),
        ("provider".to_owned(), s(config.provider.as_str())),
        (
            "secret_current".to_owned(),
            s(config.secrets.current.expose()),
        ),
        ("tolerance_secs".to_owned(), n(config.tolerance.as_secs())),
        (
            "allow_unsigned".to_owned(),
            AttributeValue::Bool(matches!(config.unsigned, UnsignedPolicy::Allow { .. })),
        ),
        ("updated_at".to_owned(), ms(updated_at)),
    ]);
    if let Some(previous) = &config.secrets.previous {
        item.insert("secret_previous".into(), s(previous.secret.expose()));
        item.insert("previous_expires_at".into(), ms(previous.expires_at));
    }
    if let UnsignedPolicy::Allow { path_token } = &config.unsigned {
        item.insert("unsigned_token".into(), s(path_token.expose()));
    }
    if let Some(names) = &config.generic_headers {
        item.insert("generic_signature_header".into(), s(&names.signature));
        item.insert("generic_timestamp_header".into(), s(&names.timestamp));
        put_opt(&mut item, "generic_id_header", names.id.as_deref().map(s));
    }
    item
}

pub(crate) fn config_from_item(item: &Item) -> Result<ProviderConfig, ItemError> {
    let previous = match (
        opt_string(item, "secret_previous")?,
        opt_millis(item, "previous_expires_at")?,
    ) {
        (Some(secret), Some(expires_at)) => Some(PreviousSecret {
            secret: Secret::new(secret),
            expires_at,
        }),
        (None, None) => None,
        // Half a rotation: refuse rather than guess how long the old secret should live.
        (Some(_), None) => return Err(ItemError::Missing("previous_expires_at")),
        (None, Some(_)) => return Err(ItemError::Missing("secret_previous")),
    };
    let unsigned = if boolean(item, "allow_unsigned")? {
        let token = opt_string(item, "unsigned_token")?
            .filter(|t| !t.is_empty())
            .ok_or(ItemError::Missing("unsigned_token"))?;
        UnsignedPolicy::Allow {
            path_token: Secret::new(token),
        }
    } else {
        // A token left behind after unsigned deliveries were turned off grants nothing.
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
        secrets: SecretSet {
            current: Secret::new(string(item, "secret_current")?),
            previous,
        },
        tolerance: Duration::from_secs(number(item, "tolerance_secs")?),
        unsigned,
        generic_headers,
    })
}

fn configs_from_items(items: &[Item]) -> Result<Vec<ProviderConfig>, StoreError> {
    items
        .iter()
        .map(|item| config_from_item(item).map_err(StoreError::from))
        .collect()
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
        let config = config_from_item(item)?;
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
        // A whole-item put: attributes of a previous configuration (an old token, a previous
        // secret) cannot linger.
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(config_to_item(config, SystemTime::now())))
            .send()
            .await
            .map_err(|err| unavailable("PutItem", &self.table, &err))?;
        Ok(())
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
        configs_from_items(&items)
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
    use crate::clock::from_unix_millis;

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
            path_token: Secret::new("tok_0123456789abcdef"),
        };
        c.generic_headers = Some(GenericHeaders {
            signature: "x-sig".into(),
            timestamp: "x-ts".into(),
            id: None,
        });
        c
    }

    fn updated() -> SystemTime {
        from_unix_millis(1_700_000_000_500)
    }

    #[test]
    fn configs_round_trip() {
        let mut with_id = rotated_generic_unsigned();
        with_id.generic_headers = Some(GenericHeaders::default());
        for c in [config(), rotated_generic_unsigned(), with_id] {
            assert_eq!(config_from_item(&config_to_item(&c, updated())), Ok(c));
        }
    }

    #[test]
    fn the_item_holds_the_documented_attributes() {
        let item = config_to_item(&rotated_generic_unsigned(), updated());
        assert_eq!(item["tenant"], s("acme"));
        assert_eq!(item["provider"], s("generic"));
        assert_eq!(item["secret_current"], s("whsec_next"));
        assert_eq!(item["secret_previous"], s("whsec_current"));
        assert_eq!(item["previous_expires_at"], n(1_700_003_600_000_i64));
        assert_eq!(item["tolerance_secs"], n(600));
        assert_eq!(item["allow_unsigned"], AttributeValue::Bool(true));
        assert_eq!(item["updated_at"], n(1_700_000_000_500_i64));
        assert!(!item.contains_key("generic_id_header"));
        let plain = config_to_item(&config(), updated());
        for absent in [
            "secret_previous",
            "unsigned_token",
            "generic_signature_header",
        ] {
            assert!(!plain.contains_key(absent), "{absent}");
        }
    }

    #[test]
    fn a_stale_token_grants_nothing() {
        let mut item = config_to_item(&config(), updated());
        item.insert("unsigned_token".into(), s("tok_0123456789abcdef"));
        let c = config_from_item(&item).expect("valid");
        assert_eq!(c.unsigned, UnsignedPolicy::Refuse);
    }

    #[test]
    fn malformed_items_are_refused_naming_the_attribute() {
        let good = config_to_item(&rotated_generic_unsigned(), updated());
        let cases: [(&str, Option<AttributeValue>, ItemError); 8] = [
            ("secret_current", None, ItemError::Missing("secret_current")),
            (
                "previous_expires_at",
                None,
                ItemError::Missing("previous_expires_at"),
            ),
            ("unsigned_token", None, ItemError::Missing("unsigned_token")),
            (
                "unsigned_token",
                Some(s("")),
                ItemError::Missing("unsigned_token"),
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
            assert_eq!(config_from_item(&item), Err(expected), "{name}");
        }
    }

    #[test]
    fn an_id_header_alone_is_refused() {
        let mut item = config_to_item(&config(), updated());
        item.insert("generic_id_header".into(), s("x-id"));
        assert_eq!(
            config_from_item(&item),
            Err(ItemError::Missing("generic_signature_header"))
        );
    }

    #[test]
    fn errors_never_carry_secrets() {
        let mut item = config_to_item(&rotated_generic_unsigned(), updated());
        item.insert("secret_current".into(), n(1));
        item.insert("tenant".into(), s("whsec_next"));
        let err = StoreError::from(config_from_item(&item).expect_err("refused"));
        assert!(!err.to_string().contains("whsec"), "{err}");
    }
}
