//! Event records ↔ DynamoDB items. Every attribute is read through the `item` helpers, so a
//! malformed item is refused by the name of the attribute at fault, never half-read.

use aws_sdk_dynamodb::types::AttributeValue;

use super::{event_pk, pending_partition, tenant_status};
use crate::{
    adapters::dynamodb::item::{
        Item, ItemError, b, boolean, bytes, millis, ms, n, number, opt_millis, opt_number,
        opt_string, parsed, put_opt, s, string,
    },
    clock::from_unix_millis,
    ports::EventSummary,
    record::{Correlation, EventKey, EventRecord, Verification},
};

/// The bytes an item's payload takes in it (deflated where that is smaller): over
/// [`INLINE_PAYLOAD_BYTES`](super::INLINE_PAYLOAD_BYTES), it goes to S3 instead.
pub(crate) fn inline_payload_bytes(item: &Item) -> usize {
    item.get("payload_z")
        .or_else(|| item.get("payload"))
        .and_then(|v| v.as_b().ok())
        .map_or(0, |bytes| bytes.as_ref().len())
}

pub(crate) fn record_to_item(record: &EventRecord) -> Item {
    let key = &record.key;
    let mut item = Item::from([
        ("pk".to_owned(), s(event_pk(key))),
        ("tenant".to_owned(), s(key.tenant.as_str())),
        ("provider".to_owned(), s(key.provider.as_str())),
        ("event_id".to_owned(), s(key.event_id.as_str())),
        ("verification".to_owned(), s(record.verification.as_str())),
        ("status".to_owned(), s(record.status.as_str())),
        ("attempts".to_owned(), n(record.attempts)),
        (
            "retry_exhausted".to_owned(),
            AttributeValue::Bool(record.retry_exhausted),
        ),
        ("received_at".to_owned(), ms(record.received_at)),
        ("payload_hash".to_owned(), s(&record.payload_hash)),
        ("status_at".to_owned(), ms(record.status_at)),
    ]);
    // A `received` record is in no index (see `EventStatus::is_indexed`).
    let indexed = record.status.is_indexed();
    put_opt(
        &mut item,
        "tenant_status",
        indexed.then(|| s(tenant_status(key, record.status))),
    );
    // The payload (deflated where that is smaller), or where it is kept when too large for
    // the item (see `inline_payload_bytes`). An erased record keeps neither.
    match (
        record.is_erased(),
        &record.payload_location,
        crate::adapters::dynamodb::deflate::deflate(&record.payload),
    ) {
        (true, _, _) => None,
        (false, Some(location), _) => item.insert("payload_location".to_owned(), s(location)),
        (false, None, Some(deflated)) => item.insert("payload_z".to_owned(), b(deflated)),
        (false, None, None) => item.insert("payload".to_owned(), b(record.payload.clone())),
    };
    put_opt(&mut item, "erased_at", record.erased_at.map(ms));
    put_opt(&mut item, "erased_by", record.erased_by.as_deref().map(s));
    put_opt(&mut item, "event_type", record.event_type.as_deref().map(s));
    put_opt(
        &mut item,
        "provider_created_at",
        record.provider_created_at.map(ms),
    );
    put_opt(
        &mut item,
        "request_id",
        record.correlation.request_id.as_deref().map(s),
    );
    put_opt(
        &mut item,
        "client_request_id",
        record.correlation.client_request_id.as_deref().map(s),
    );
    put_opt(
        &mut item,
        "traceparent",
        record.correlation.trace.map(|t| s(t.to_string())),
    );
    put_opt(&mut item, "last_error", record.last_error.as_deref().map(s));
    put_opt(&mut item, "enqueued_at", record.enqueued_at.map(ms));
    put_opt(&mut item, "completed_at", record.completed_at.map(ms));
    put_opt(
        &mut item,
        "lease_owner",
        record.lease_owner.as_deref().map(s),
    );
    put_opt(&mut item, "lease_until", record.lease_until.map(ms));
    put_opt(&mut item, "outcome", record.outcome.as_deref().map(s));
    put_opt(
        &mut item,
        "expires_at",
        record.expires_at.map(|t| n(crate::clock::unix_secs(t))),
    );
    put_opt(
        &mut item,
        "pending_status",
        (indexed && record.status.is_pending()).then(|| s(pending_partition(key, record.status))),
    );
    put_opt(
        &mut item,
        "replay_count",
        (record.replay_count > 0).then(|| n(record.replay_count)),
    );
    put_opt(&mut item, "replayed_at", record.replayed_at.map(ms));
    put_opt(&mut item, "note", record.note.as_deref().map(s));
    put_opt(&mut item, "discarded_at", record.discarded_at.map(ms));
    put_opt(
        &mut item,
        "duplicates",
        (record.duplicates > 0).then(|| n(record.duplicates)),
    );
    item
}

/// The key, checked against `pk` so an item copied or edited by hand cannot pass for another.
pub(crate) fn key_from_item(item: &Item) -> Result<EventKey, ItemError> {
    let key = EventKey {
        tenant: parsed(item, "tenant")?,
        provider: parsed(item, "provider")?,
        event_id: parsed(item, "event_id")?,
    };
    if string(item, "pk")? != event_pk(&key) {
        return Err(ItemError::Invalid("pk"));
    }
    Ok(key)
}

pub(crate) fn record_from_item(item: &Item) -> Result<EventRecord, ItemError> {
    Ok(EventRecord {
        key: key_from_item(item)?,
        event_type: opt_string(item, "event_type")?.map(str::to_owned),
        provider_created_at: opt_millis(item, "provider_created_at")?,
        correlation: Correlation {
            request_id: opt_string(item, "request_id")?.map(str::to_owned),
            client_request_id: opt_string(item, "client_request_id")?.map(str::to_owned),
            trace: opt_string(item, "traceparent")?.and_then(|t| t.parse().ok()),
        },
        verification: Verification::from_stored(string(item, "verification")?),
        status: parsed(item, "status")?,
        status_at: millis(item, "status_at")?,
        attempts: number(item, "attempts")?,
        retry_exhausted: boolean(item, "retry_exhausted")?,
        last_error: opt_string(item, "last_error")?.map(str::to_owned),
        received_at: millis(item, "received_at")?,
        enqueued_at: opt_millis(item, "enqueued_at")?,
        completed_at: opt_millis(item, "completed_at")?,
        payload: match (opt_string(item, "payload_location")?, item.get("payload_z")) {
            // A tombstone: its payload was erased.
            _ if item.contains_key("erased_at") => Vec::new(),
            // Loaded from there by the store when it returns the record.
            (Some(_), _) => Vec::new(),
            (None, Some(_)) => crate::adapters::dynamodb::deflate::inflate(
                bytes(item, "payload_z")?,
                crate::ingress::MAX_STORED_BODY_BYTES,
            )
            .ok_or(ItemError::Invalid("payload_z"))?,
            (None, None) => bytes(item, "payload")?.to_vec(),
        },
        payload_hash: string(item, "payload_hash")?.to_owned(),
        payload_location: opt_string(item, "payload_location")?.map(str::to_owned),
        lease_owner: opt_string(item, "lease_owner")?.map(str::to_owned),
        lease_until: opt_millis(item, "lease_until")?,
        outcome: opt_string(item, "outcome")?.map(str::to_owned),
        expires_at: opt_number::<i64>(item, "expires_at")?
            .map(|secs| from_unix_millis(secs.saturating_mul(1_000))),
        replay_count: opt_number(item, "replay_count")?.unwrap_or(0),
        replayed_at: opt_millis(item, "replayed_at")?,
        note: opt_string(item, "note")?.map(str::to_owned),
        discarded_at: opt_millis(item, "discarded_at")?,
        duplicates: opt_number(item, "duplicates")?.unwrap_or(0),
        erased_at: opt_millis(item, "erased_at")?,
        erased_by: opt_string(item, "erased_by")?.map(str::to_owned),
    })
}

pub(crate) fn summary_from_item(item: &Item) -> Result<EventSummary, ItemError> {
    Ok(EventSummary {
        key: key_from_item(item)?,
        event_type: opt_string(item, "event_type")?.map(str::to_owned),
        status: parsed(item, "status")?,
        attempts: number(item, "attempts")?,
        retry_exhausted: boolean(item, "retry_exhausted")?,
        last_error: opt_string(item, "last_error")?.map(str::to_owned),
        received_at: millis(item, "received_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::{
        super::{PENDING_SHARDS, SUMMARY_ATTRIBUTES},
        *,
    };
    use crate::{
        ids::{EventId, TenantId},
        ports::StoreError,
        provider::Provider,
        record::EventStatus,
        secret::SecretSlot,
    };

    fn key() -> EventKey {
        EventKey {
            tenant: TenantId::parse("acme").expect("tenant"),
            provider: Provider::StandardWebhooks,
            event_id: EventId::parse("msg_#1").expect("event id"),
        }
    }

    fn minimal() -> EventRecord {
        EventRecord::received(
            key(),
            None,
            None,
            Correlation::default(),
            Verification::Unsigned,
            Vec::new(),
            from_unix_millis(1_700_000_000_001),
        )
    }

    fn full() -> EventRecord {
        let mut r = EventRecord::received(
            key(),
            Some("invoice.paid".into()),
            Some(from_unix_millis(1_699_999_999_000)),
            Correlation {
                request_id: Some("req-1".into()),
                client_request_id: Some("x-1".into()),
                trace: Some(crate::trace::TraceParent::generate()),
            },
            Verification::Verified(SecretSlot::Previous),
            vec![0, 159, 146, 150, b'{', b'}'],
            from_unix_millis(1_700_000_000_001),
        );
        r.status = EventStatus::Dead;
        r.status_at = from_unix_millis(1_700_000_009_000);
        r.attempts = 5;
        r.retry_exhausted = true;
        r.last_error = Some("handler failed".into());
        r.enqueued_at = Some(from_unix_millis(1_700_000_000_050));
        r.completed_at = Some(from_unix_millis(1_700_000_009_000));
        r.lease_owner = Some("worker-1".into());
        r.lease_until = Some(from_unix_millis(1_700_000_060_000));
        r.outcome = Some("permanent: bad payload".into());
        r.replay_count = 2;
        r.replayed_at = Some(from_unix_millis(1_700_000_008_000));
        r.note = Some("ops: replay after fix".into());
        r.duplicates = 3;
        r
    }

    #[test]
    fn only_indexed_pending_records_carry_the_pending_partition() {
        let mut record = minimal();
        for status in EventStatus::ALL {
            record.status = status;
            let item = record_to_item(&record);
            assert_eq!(
                item.contains_key("tenant_status"),
                status != EventStatus::Received,
                "{status}"
            );
            match item.get("pending_status") {
                Some(AttributeValue::S(p)) => {
                    assert!(status.is_pending() && status.is_indexed(), "{status}");
                    let (name, shard) = p.split_once('#').expect("status#shard");
                    assert_eq!(name, status.as_str());
                    assert!(shard.parse::<u8>().expect("shard") < PENDING_SHARDS);
                }
                None => assert!(!status.is_pending() || !status.is_indexed(), "{status}"),
                Some(other) => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn records_round_trip() {
        for record in [minimal(), full()] {
            assert_eq!(record_from_item(&record_to_item(&record)), Ok(record));
        }
    }

    #[test]
    fn an_erased_record_keeps_its_hash_and_no_payload() {
        let mut record = full();
        record.payload = Vec::new();
        record.erased_at = Some(from_unix_millis(1_700_000_010_000));
        record.erased_by = Some("dpo@example.com".into());
        let item = record_to_item(&record);
        for gone in ["payload", "payload_z", "payload_location"] {
            assert!(!item.contains_key(gone), "{gone}");
        }
        assert_eq!(item["payload_hash"], s(&record.payload_hash));
        assert_eq!(record_from_item(&item), Ok(record.clone()));
        // Between the erase's two writes the location may linger: still no payload.
        let mut lingering = item;
        lingering.insert("payload_location".into(), s("payloads/acme/x/y"));
        let read = record_from_item(&lingering).expect("reads");
        assert!(read.payload.is_empty() && read.is_erased());
    }

    #[test]
    fn the_item_carries_the_keys_the_table_and_index_need() {
        let item = record_to_item(&full());
        assert_eq!(item["pk"], s("acme#standard-webhooks#msg_#1"));
        assert!(
            item["tenant_status"]
                .as_s()
                .expect("S")
                .starts_with("acme#dead#")
        );
        assert_eq!(item["status_at"], n(1_700_000_009_000_i64));
        assert_eq!(item["verification"], s("verified:previous"));
        assert_eq!(item["payload"], b(vec![0, 159, 146, 150, b'{', b'}']));
        let fresh = record_to_item(&minimal());
        assert_eq!(fresh["status_at"], n(1_700_000_000_001_i64));
        for absent in [
            "event_type",
            "request_id",
            "enqueued_at",
            "last_error",
            "tenant_status",
            "pending_status",
        ] {
            assert!(!fresh.contains_key(absent), "{absent}");
        }
    }

    #[test]
    fn summaries_read_the_projected_attributes() {
        let record = full();
        let projected: Item = record_to_item(&record)
            .into_iter()
            .filter(|(k, _)| SUMMARY_ATTRIBUTES.contains(&k.as_str()))
            .collect();
        assert_eq!(
            summary_from_item(&projected),
            Ok(EventSummary {
                key: record.key,
                event_type: record.event_type,
                status: EventStatus::Dead,
                attempts: 5,
                retry_exhausted: true,
                last_error: record.last_error,
                received_at: record.received_at,
            })
        );
    }

    #[test]
    fn malformed_items_are_refused_naming_the_attribute() {
        let good = record_to_item(&full());
        let cases: [(&str, Option<AttributeValue>, ItemError); 7] = [
            ("payload", None, ItemError::Missing("payload")),
            (
                "payload",
                Some(s("{}")),
                ItemError::WrongType {
                    attribute: "payload",
                    expected: "B",
                },
            ),
            ("status", Some(s("lost")), ItemError::Invalid("status")),
            ("attempts", Some(n(-1)), ItemError::Invalid("attempts")),
            (
                "provider",
                Some(s("paddel")),
                ItemError::Invalid("provider"),
            ),
            (
                "pk",
                Some(s("other#stripe#msg_#1")),
                ItemError::Invalid("pk"),
            ),
            (
                "enqueued_at",
                Some(s("yesterday")),
                ItemError::WrongType {
                    attribute: "enqueued_at",
                    expected: "N",
                },
            ),
        ];
        for (name, value, expected) in cases {
            let mut item = good.clone();
            match value {
                Some(v) => item.insert(name.to_owned(), v),
                None => item.remove(name),
            };
            assert_eq!(record_from_item(&item), Err(expected), "{name}");
        }
    }

    #[test]
    fn json_payloads_are_stored_deflated_and_read_back_whole() {
        let mut record = full();
        record.payload =
            br#"{"id":"evt_1","type":"invoice.paid","data":{"object":{"id":"in_1"}}}"#.repeat(10);
        let item = record_to_item(&record);
        assert!(!item.contains_key("payload"));
        let stored = item["payload_z"].as_b().expect("binary").as_ref().len();
        assert!(stored < record.payload.len() / 4, "{stored}");
        assert_eq!(record_from_item(&item), Ok(record));
        // Records written before payloads were deflated read as they are.
        let mut old = item.clone();
        old.remove("payload_z");
        old.insert("payload".into(), b(b"{}".to_vec()));
        assert_eq!(
            record_from_item(&old).map(|r| r.payload),
            Ok(b"{}".to_vec())
        );
        // Bytes that do not inflate are refused by name.
        let mut broken = item;
        broken.insert("payload_z".into(), b(vec![0xff, 0xfe, 0x00]));
        assert_eq!(
            record_from_item(&broken),
            Err(ItemError::Invalid("payload_z"))
        );
    }

    #[test]
    fn malformed_errors_never_carry_values() {
        let mut item = record_to_item(&full());
        item.insert("status".into(), s("sk_live_secretish"));
        let err = StoreError::from(record_from_item(&item).expect_err("refused"));
        assert!(!err.to_string().contains("secretish"), "{err}");
    }
}
