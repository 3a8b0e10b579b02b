//! Endpoints, tenant policies and rate-limit windows. An operator's write changes the
//! configuration attributes only, conditioned on `version`; the dispatcher's health updates
//! change the health attributes only, with no version: the two never undo each other.

use std::{
    collections::BTreeMap,
    num::NonZeroU32,
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    operation::transact_write_items::TransactWriteItemsError,
    types::{AttributeValue, CancellationReason, Delete, ReturnValue, Select, TransactWriteItem},
};

use super::{DUE_INDEX, DynamoOutboundStore, decode_token, encode_token, key, tenant_pk};
use crate::{
    adapters::{
        dynamodb::{
            expression::{UpdateBuilder, building, is_conditional_failure},
            item::{
                Item, ItemError, ms, n, number, opt_millis, opt_number, opt_string, parsed, s,
                string,
            },
            unavailable,
        },
        tenants::dynamodb::sealing_error,
    },
    clock::unix_secs,
    ids::TenantId,
    outbound::{
        TenantPolicy,
        endpoint::{CustomHeaders, DisabledReason, Endpoint, EndpointHeaders, EndpointHealth},
        filter::EventFilter,
        ids::EndpointId,
        ports::{EndpointStore, Page, RateLimiter},
        rate,
        ssrf::{EgressPolicy, EndpointUrl},
    },
    ports::StoreError,
    retry::RetrySchedule,
    sealing::{SealContext, Sealed},
    secret::{PreviousSecret, Secret, SecretSet},
};

const CURRENT: &str = "secret_current";
const PREVIOUS: &str = "secret_previous";
const HOLDING: &str = "holding";
const ENDPOINT_COUNT: &str = "endpoints";
/// Custom headers: names in the clear, values sealed as one JSON object.
const HEADER_NAMES: &str = "header_names";
const SEALED_HEADERS: &str = "headers_sealed";
const LEGACY_HEADERS: &str = "headers";
/// How long a rate-limit window's item lives.
/// How long an endpoint's next free slot is kept: past a pointer's refresh and its queue's
/// retention, so a backlog's reserved slots are never forgotten while pointers hold them.
const RATE_STATE_TTL: Duration = Duration::from_secs(5 * 24 * 3600);
/// How many times a reservation is tried while the endpoint turns idle and busy under it.
const RESERVE_TRIES: u32 = 3;

fn endpoint_key(tenant: &TenantId, id: &EndpointId) -> Item {
    key(tenant_pk(tenant), format!("ep#{id}"))
}

/// How many endpoints the tenant has, kept with every insert and delete (`insert_endpoint`).
fn count_key(tenant: &TenantId) -> Item {
    key(tenant_pk(tenant), ENDPOINT_COUNT.into())
}

/// Which items of a cancelled transaction failed their condition, in order.
fn failed_conditions(reasons: &[CancellationReason]) -> Vec<bool> {
    reasons
        .iter()
        .map(|r| r.code() == Some("ConditionalCheckFailed"))
        .collect()
}

fn seal_context(tenant: &TenantId, id: &EndpointId, field: &str) -> SealContext {
    SealContext::new(tenant, format!("endpoint:{id}"), field)
}

/// An endpoint's configuration and health from its item; secrets are opened separately.
fn endpoint_from_item(item: &Item) -> Result<Endpoint, ItemError> {
    let tenant: TenantId = parsed(item, "tenant")?;
    let id: EndpointId = parsed(item, "endpoint_id")?;
    // Stored URLs passed the guard when written; the dispatcher's connection checks again.
    let url = EndpointUrl::parse(string(item, "url")?, EgressPolicy::LOCAL_DEVELOPMENT)
        .map_err(|_| ItemError::Invalid("url"))?;
    let filter = EventFilter::parse_list(opt_string(item, "filter")?.unwrap_or_default())
        .map_err(|_| ItemError::Invalid("filter"))?;
    let header_names = match (item.get(HEADER_NAMES), legacy_headers(item)?) {
        (Some(AttributeValue::L(names)), _) => names
            .iter()
            .map(|name| name.as_s().cloned())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ItemError::Invalid(HEADER_NAMES))?,
        (_, Some(legacy)) => legacy.names().map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    let disabled = match (
        opt_string(item, "auto_disabled_reason")?,
        opt_millis(item, "auto_disabled_at")?,
    ) {
        (Some(reason), Some(at)) => Some((
            reason
                .parse::<DisabledReason>()
                .map_err(|()| ItemError::Invalid("auto_disabled_reason"))?,
            at,
        )),
        _ => None,
    };
    Ok(Endpoint {
        tenant,
        id,
        url,
        description: opt_string(item, "description")?
            .unwrap_or_default()
            .to_owned(),
        filter,
        disabled_by_operator: opt_millis(item, "disabled_at")?,
        rate_limit: opt_number::<u32>(item, "rate_limit")?.and_then(NonZeroU32::new),
        headers: EndpointHeaders::Sealed(header_names),
        secrets: None,
        created_at: opt_millis(item, "created_at")?.unwrap_or(SystemTime::UNIX_EPOCH),
        updated_at: opt_millis(item, "updated_at")?.unwrap_or(SystemTime::UNIX_EPOCH),
        version: number(item, "version")?,
        health: EndpointHealth {
            consecutive_failures: opt_number(item, "consecutive_failures")?.unwrap_or(0),
            failing_since: opt_millis(item, "failing_since")?,
            paused_until: opt_millis(item, "paused_until")?,
            pauses: opt_number(item, "pauses")?.unwrap_or(0),
            last_success_at: opt_millis(item, "last_success_at")?,
            disabled,
            holding: opt_string(item, "due_kind")? == Some(HOLDING),
            slow_since: opt_millis(item, "slow_since")?,
        },
    })
}

/// Headers stored in the clear before their values were sealed; read until the endpoint's next
/// write seals them.
fn legacy_headers(item: &Item) -> Result<Option<CustomHeaders>, ItemError> {
    match item.get(LEGACY_HEADERS) {
        Some(AttributeValue::M(map)) => CustomHeaders::new(
            map.iter()
                .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.clone(), v.clone()))),
        )
        .map(Some)
        .map_err(|_| ItemError::Invalid(LEGACY_HEADERS)),
        _ => Ok(None),
    }
}

impl DynamoOutboundStore {
    /// The endpoint's custom headers with their values.
    async fn open_headers(
        &self,
        item: &Item,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<CustomHeaders, StoreError> {
        let Some(sealed) = self.open(item, SEALED_HEADERS, tenant, id).await? else {
            return Ok(legacy_headers(item)?.unwrap_or_default());
        };
        let pairs: BTreeMap<String, String> = serde_json::from_str(sealed.expose())
            .map_err(|_| ItemError::Invalid(SEALED_HEADERS))?;
        Ok(CustomHeaders::new(pairs).map_err(|_| ItemError::Invalid(SEALED_HEADERS))?)
    }

    /// Set the headers' names in the clear and their values sealed (one value for all, so one
    /// KMS call opens them), or remove them all.
    async fn write_headers(
        &self,
        update: UpdateBuilder,
        headers: &CustomHeaders,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<UpdateBuilder, StoreError> {
        let update = update.remove(LEGACY_HEADERS);
        if headers.is_empty() {
            return Ok(update.remove(HEADER_NAMES).remove(SEALED_HEADERS));
        }
        let names = headers.names().map(s).collect();
        let values: BTreeMap<&str, &str> = headers.iter().collect();
        let json = serde_json::to_string(&values)
            .map_err(|e| StoreError::Rejected(format!("headers: {e}")))?;
        Ok(update.set(HEADER_NAMES, AttributeValue::L(names)).set(
            SEALED_HEADERS,
            self.seal(&Secret::new(json), tenant, id, SEALED_HEADERS)
                .await?,
        ))
    }

    async fn open(
        &self,
        item: &Item,
        field: &'static str,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<Option<Secret>, StoreError> {
        let Some(text) = opt_string(item, field)? else {
            return Ok(None);
        };
        let context = seal_context(tenant, id, field);
        if let Some(secret) = self.cached(text, &context) {
            return Ok(Some(secret));
        }
        let sealed = Sealed::from_stored(text).map_err(|_| ItemError::Invalid(field))?;
        let plain = self
            .envelope
            .open(&sealed, &context)
            .await
            .map_err(sealing_error)?;
        let secret = Secret::new(String::from_utf8(plain).map_err(|_| ItemError::Invalid(field))?);
        self.remember(text, &context, &secret);
        Ok(Some(secret))
    }

    async fn seal(
        &self,
        secret: &Secret,
        tenant: &TenantId,
        id: &EndpointId,
        field: &str,
    ) -> Result<AttributeValue, StoreError> {
        let sealed = self
            .envelope
            .seal(secret.expose().as_bytes(), &seal_context(tenant, id, field))
            .await
            .map_err(sealing_error)?;
        Ok(s(sealed.as_str()))
    }

    /// The update that writes `endpoint`'s configuration (sealing its secrets and header
    /// values), created if its version is 0, else only at that version.
    async fn endpoint_update(&self, endpoint: &Endpoint) -> Result<UpdateBuilder, StoreError> {
        let (tenant, id) = (&endpoint.tenant, &endpoint.id);
        let mut update = UpdateBuilder::new(endpoint_key(tenant, id))
            .set("tenant", s(tenant.as_str()))
            .set("endpoint_id", s(id.as_str()))
            .set("url", s(endpoint.url.as_str()))
            .set("description", s(&endpoint.description))
            .set("filter", s(endpoint.filter.patterns().join(",")))
            .set("created_at", ms(endpoint.created_at))
            .set("updated_at", ms(endpoint.updated_at))
            .set("version", n(endpoint.version + 1));
        update = match endpoint.disabled_by_operator {
            Some(at) => update.set("disabled_at", ms(at)),
            None => update.remove("disabled_at"),
        };
        update = match endpoint.rate_limit {
            Some(limit) => update.set("rate_limit", n(limit)),
            None => update.remove("rate_limit"),
        };
        if let Some(headers) = endpoint.headers.opened() {
            update = self.write_headers(update, headers, tenant, id).await?;
        }
        if let Some(secrets) = &endpoint.secrets {
            update = update.set(
                CURRENT,
                self.seal(&secrets.current, tenant, id, CURRENT).await?,
            );
            update = match &secrets.previous {
                Some(previous) => update
                    .set(
                        PREVIOUS,
                        self.seal(&previous.secret, tenant, id, PREVIOUS).await?,
                    )
                    .set("previous_expires_at", ms(previous.expires_at)),
                None => update.remove(PREVIOUS).remove("previous_expires_at"),
            };
        }
        update = if endpoint.version == 0 {
            update.condition("attribute_not_exists(#pk)", &["pk"])
        } else {
            update
                .condition("#version = :read_version", &["version"])
                .value(":read_version", n(endpoint.version))
        };
        Ok(update)
    }

    /// How many items of the tenant's partition have a sort key starting with `prefix`: a
    /// count query, which returns none of them.
    pub(super) async fn tenant_item_count(
        &self,
        tenant: &TenantId,
        prefix: &str,
    ) -> Result<usize, StoreError> {
        let mut count = 0;
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(tenant_pk(tenant)))
                .expression_attribute_values(":prefix", s(prefix))
                .select(Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable("Query", &self.table, &e))?;
            count += usize::try_from(output.count()).unwrap_or(0);
            start = output.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(count);
            }
        }
    }

    /// Every item of the tenant's partition whose sort key starts with `prefix`, page by page.
    pub(super) async fn tenant_items(
        &self,
        tenant: &TenantId,
        prefix: &str,
        consistent: bool,
    ) -> Result<Vec<Item>, StoreError> {
        self.items_with_prefix(&tenant_pk(tenant), prefix, consistent)
            .await
    }

    /// Every item of partition `pk` whose sort key starts with `prefix`, page by page.
    pub(super) async fn items_with_prefix(
        &self,
        pk: &str,
        prefix: &str,
        consistent: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(pk))
                .expression_attribute_values(":prefix", s(prefix))
                .consistent_read(consistent)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable("Query", &self.table, &e))?;
            items.extend(output.items().iter().cloned());
            start = output.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    async fn get_endpoint_item(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(endpoint_key(tenant, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", &self.table, &e))?;
        Ok(output.item)
    }

    /// Run a health update; an endpoint deleted meanwhile is not an error.
    async fn update_health(&self, update: UpdateBuilder) -> Result<Option<Item>, StoreError> {
        let result = update
            .condition("attribute_exists(#pk)", &["pk"])
            .build()
            .update_item(&self.client, &self.table)
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => Ok(output.attributes),
            Err(e) if is_conditional_failure(&e) => Ok(None),
            Err(e) => Err(unavailable("UpdateItem", &self.table, &e)),
        }
    }
}

#[async_trait]
impl EndpointStore for DynamoOutboundStore {
    async fn put_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError> {
        let id = &endpoint.id;
        match self
            .endpoint_update(endpoint)
            .await?
            .build()
            .update_item(&self.client, &self.table)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Err(StoreError::Conflict(format!(
                "endpoint {id}: {}",
                if endpoint.version == 0 {
                    "exists already"
                } else {
                    "changed since it was read"
                }
            ))),
            Err(e) => Err(unavailable("UpdateItem", &self.table, &e)),
        }
    }

    async fn insert_endpoint(
        &self,
        endpoint: &Endpoint,
        existing: usize,
        max: usize,
    ) -> Result<bool, StoreError> {
        let count = UpdateBuilder::new(count_key(&endpoint.tenant))
            .set_clause(
                "#count = if_not_exists(#count, :existing) + :one",
                &["count"],
            )
            .value(":existing", n(existing))
            .value(":one", n(1))
            .condition("attribute_not_exists(#count) OR #count < :max", &["count"])
            .value(":max", n(max))
            .build()
            .transact_update(&self.table)?;
        let insert = self
            .endpoint_update(endpoint)
            .await?
            .build()
            .transact_update(&self.table)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(count)
            .transact_items(insert)
            .send()
            .await;
        let Err(err) = result else {
            return Ok(true);
        };
        let Some(TransactWriteItemsError::TransactionCanceledException(cancel)) =
            err.as_service_error()
        else {
            return Err(unavailable("TransactWriteItems", &self.table, &err));
        };
        match failed_conditions(cancel.cancellation_reasons()).as_slice() {
            [true, _] => Ok(false),
            [false, true] => Err(StoreError::Conflict(format!(
                "endpoint {}: exists already",
                endpoint.id
            ))),
            _ => Err(unavailable("TransactWriteItems", &self.table, &err)),
        }
    }

    async fn endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<Option<Endpoint>, StoreError> {
        let item = self.get_endpoint_item(tenant, id).await?;
        Ok(item.as_ref().map(endpoint_from_item).transpose()?)
    }

    async fn endpoint_with_secrets(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<Option<Endpoint>, StoreError> {
        let Some(item) = self.get_endpoint_item(tenant, id).await? else {
            return Ok(None);
        };
        let mut endpoint = endpoint_from_item(&item)?;
        let current = self
            .open(&item, CURRENT, tenant, id)
            .await?
            .ok_or(ItemError::Missing(CURRENT))?;
        let previous = match (
            self.open(&item, PREVIOUS, tenant, id).await?,
            opt_millis(&item, "previous_expires_at")?,
        ) {
            (Some(secret), Some(expires_at)) => Some(PreviousSecret { secret, expires_at }),
            _ => None,
        };
        endpoint.secrets = Some(SecretSet { current, previous });
        endpoint.headers = EndpointHeaders::Open(self.open_headers(&item, tenant, id).await?);
        Ok(Some(endpoint))
    }

    async fn endpoints(&self, tenant: &TenantId) -> Result<Vec<Endpoint>, StoreError> {
        self.tenant_items(tenant, "ep#", true)
            .await?
            .iter()
            .map(|item| Ok(endpoint_from_item(item)?))
            .collect()
    }

    async fn delete_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        version: u64,
    ) -> Result<(), StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(endpoint_key(tenant, id)))
            .condition_expression("#version = :v")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":v", n(version))
            .build()
            .map_err(|e| building("TransactWriteItems", &e))?;
        let uncount = UpdateBuilder::new(count_key(tenant))
            .set_clause("#count = #count - :one", &["count"])
            .value(":one", n(1))
            .condition("#count > :zero", &["count"])
            .value(":zero", n(0))
            .build()
            .transact_update(&self.table)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(delete).build())
            .transact_items(uncount)
            .send()
            .await;
        let Err(err) = result else {
            return Ok(());
        };
        let Some(TransactWriteItemsError::TransactionCanceledException(cancel)) =
            err.as_service_error()
        else {
            return Err(unavailable("TransactWriteItems", &self.table, &err));
        };
        match failed_conditions(cancel.cancellation_reasons()).as_slice() {
            [true, _] => {
                return Err(StoreError::Conflict(format!(
                    "endpoint {id}: changed since it was read"
                )));
            }
            // A tenant whose endpoints were never counted: nothing to count out.
            [false, true] => {}
            _ => return Err(unavailable("TransactWriteItems", &self.table, &err)),
        }
        match self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(endpoint_key(tenant, id)))
            .condition_expression("#version = :v")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":v", n(version))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Err(StoreError::Conflict(format!(
                "endpoint {id}: changed since it was read"
            ))),
            Err(e) => Err(unavailable("DeleteItem", &self.table, &e)),
        }
    }

    async fn record_success(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        self.update_health(
            UpdateBuilder::new(endpoint_key(tenant, id))
                .set("consecutive_failures", n(0))
                .set("last_success_at", ms(at))
                .remove("failing_since")
                .remove("paused_until")
                .remove("pauses"),
        )
        .await
        .map(|_| ())
    }

    async fn mark_slow(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        since: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        let update = UpdateBuilder::new(endpoint_key(tenant, id));
        let update = match since {
            Some(at) => update.set("slow_since", ms(at)),
            None => update.remove("slow_since"),
        };
        self.update_health(update).await.map(|_| ())
    }

    async fn record_failure(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        at: SystemTime,
    ) -> Result<EndpointHealth, StoreError> {
        let item = self
            .update_health(
                UpdateBuilder::new(endpoint_key(tenant, id))
                    .set_clause(
                        "#consecutive_failures = if_not_exists(#consecutive_failures, :zero) + :one",
                        &["consecutive_failures"],
                    )
                    .set_clause(
                        "#failing_since = if_not_exists(#failing_since, :at)",
                        &["failing_since"],
                    )
                    .value(":zero", n(0))
                    .value(":one", n(1))
                    .value(":at", ms(at)),
            )
            .await?;
        Ok(item
            .as_ref()
            .map(endpoint_from_item)
            .transpose()?
            .map(|e| e.health)
            .unwrap_or_default())
    }

    async fn pause(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        until: SystemTime,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        // Refused (not opened) when it is open already, or the endpoint is gone.
        let opened = self
            .update_health(
                UpdateBuilder::new(endpoint_key(tenant, id))
                    .set("paused_until", ms(until))
                    .set_clause(
                        "#pauses = if_not_exists(#pauses, :zero) + :one",
                        &["pauses"],
                    )
                    .value(":zero", n(0))
                    .value(":one", n(1))
                    .condition(
                        "attribute_not_exists(#paused_until) OR #paused_until <= :now",
                        &["paused_until"],
                    )
                    .value(":now", ms(now)),
            )
            .await?;
        Ok(opened.is_some())
    }

    async fn disable(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        reason: DisabledReason,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        self.update_health(
            UpdateBuilder::new(endpoint_key(tenant, id))
                .set("auto_disabled_reason", s(reason.as_str()))
                .set("auto_disabled_at", ms(at)),
        )
        .await
        .map(|_| ())
    }

    async fn reset_health(&self, tenant: &TenantId, id: &EndpointId) -> Result<(), StoreError> {
        self.update_health(
            UpdateBuilder::new(endpoint_key(tenant, id))
                .set("consecutive_failures", n(0))
                .remove("failing_since")
                .remove("paused_until")
                .remove("auto_disabled_reason")
                .remove("auto_disabled_at"),
        )
        .await
        .map(|_| ())
    }

    async fn mark_holding(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        self.update_health(
            UpdateBuilder::new(endpoint_key(tenant, id))
                .set("due_kind", s(HOLDING))
                .set("due_at", ms(at)),
        )
        .await
        .map(|_| ())
    }

    async fn clear_holding(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        read_at: SystemTime,
    ) -> Result<(), StoreError> {
        self.update_health(
            UpdateBuilder::new(endpoint_key(tenant, id))
                .remove("due_kind")
                .remove("due_at")
                .condition("#due_at <= :read_at", &["due_at"])
                .value(":read_at", ms(read_at)),
        )
        .await
        .map(|_| ())
    }

    async fn holding_endpoints(
        &self,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Page<(TenantId, EndpointId)>, StoreError> {
        let start = after
            .map(|token| decode_token(token, "due_kind", HOLDING))
            .transpose()?;
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(DUE_INDEX)
            .key_condition_expression("due_kind = :kind")
            .expression_attribute_values(":kind", s(HOLDING))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX).max(1))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| unavailable("Query", &self.table, &e))?;
        let items = output
            .items()
            .iter()
            .map(|item| Ok((parsed(item, "tenant")?, parsed(item, "endpoint_id")?)))
            .collect::<Result<_, ItemError>>()?;
        Ok(Page {
            items,
            next: output.last_evaluated_key().and_then(encode_token),
        })
    }

    async fn tenant_policy(&self, tenant: &TenantId) -> Result<Option<TenantPolicy>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(tenant_pk(tenant), "policy".into())))
            .send()
            .await
            .map_err(|e| unavailable("GetItem", &self.table, &e))?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        let schedule = opt_string(&item, "schedule")?
            .map(|text| text.parse::<RetrySchedule>())
            .transpose()
            .map_err(|_| ItemError::Invalid("schedule"))?;
        Ok(Some(TenantPolicy {
            schedule,
            disable_after: opt_number::<u64>(&item, "disable_after_secs")?.map(Duration::from_secs),
            relay_inbound: matches!(item.get("relay_inbound"), Some(AttributeValue::Bool(true))),
            registered_types_only: matches!(
                item.get("registered_types_only"),
                Some(AttributeValue::Bool(true))
            ),
        }))
    }

    async fn put_tenant_policy(
        &self,
        tenant: &TenantId,
        policy: &TenantPolicy,
    ) -> Result<(), StoreError> {
        let mut item = key(tenant_pk(tenant), "policy".into());
        item.insert("tenant".into(), s(tenant.as_str()));
        if let Some(schedule) = &policy.schedule {
            item.insert("schedule".into(), s(schedule.to_string()));
        }
        if let Some(after) = policy.disable_after {
            item.insert("disable_after_secs".into(), n(after.as_secs()));
        }
        item.insert(
            "relay_inbound".into(),
            AttributeValue::Bool(policy.relay_inbound),
        );
        item.insert(
            "registered_types_only".into(),
            AttributeValue::Bool(policy.registered_types_only),
        );
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| unavailable("PutItem", &self.table, &e))?;
        Ok(())
    }
}

#[async_trait]
impl RateLimiter for DynamoOutboundStore {
    /// One item per endpoint holds its next free slot (unix milliseconds). An idle endpoint's
    /// slot is `now`; a busy one's moves on by one interval, atomically, so concurrent
    /// dispatchers never share a slot. One write either way, two when the endpoint turns idle
    /// or busy between them.
    async fn reserve(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        limit: u32,
        now: SystemTime,
    ) -> Result<SystemTime, StoreError> {
        let item = || key(format!("rate#{tenant}#{endpoint}"), "rate".to_owned());
        let step = rate::interval(limit);
        let step_ms = u64::try_from(step.as_millis()).unwrap_or(1000);
        let expires = n(unix_secs(now + RATE_STATE_TTL));
        for _ in 0..RESERVE_TRIES {
            let idle = UpdateBuilder::new(item())
                .set("next_free", ms(now + step))
                .set("expires_at", expires.clone())
                .condition(
                    "attribute_not_exists(#next_free) OR #next_free <= :now",
                    &["next_free"],
                )
                .value(":now", ms(now))
                .build()
                .update_item(&self.client, &self.table)
                .send()
                .await;
            match idle {
                Ok(_) => return Ok(now),
                Err(e) if is_conditional_failure(&e) => {}
                Err(e) => return Err(unavailable("UpdateItem", &self.table, &e)),
            }
            let busy = UpdateBuilder::new(item())
                .set_clause("#next_free = #next_free + :step", &["next_free"])
                .value(":step", n(step_ms))
                .set("expires_at", expires.clone())
                .condition("#next_free > :now", &["next_free"])
                .value(":now", ms(now))
                .build()
                .update_item(&self.client, &self.table)
                .return_values(ReturnValue::UpdatedOld)
                .send()
                .await;
            match busy {
                Ok(out) => {
                    let old = out.attributes.unwrap_or_default();
                    return Ok(opt_millis(&old, "next_free")?.unwrap_or(now));
                }
                // It turned idle between the two: the first write takes it now.
                Err(e) if is_conditional_failure(&e) => {}
                Err(e) => return Err(unavailable("UpdateItem", &self.table, &e)),
            }
        }
        Err(StoreError::Unavailable(format!(
            "the rate limiter of endpoint {endpoint} kept changing"
        )))
    }
}
