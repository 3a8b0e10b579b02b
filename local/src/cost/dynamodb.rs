//! DynamoDB's on-demand billing of recorded calls, by the service's own rules:
//!
//! - A write bills the larger of the item before and after, in 1 KB units (at least one), a
//!   write whose condition failed still bills the item it was checked against, and a
//!   transaction writes each item twice (prepare and commit; once when it is cancelled).
//! - Each global secondary index the write touches bills its index entry (table keys, index
//!   keys and the projected attributes) in 1 KB units: a put when an entry appears, a delete
//!   when it goes, both when the index key changes, one write when only projected attributes
//!   change, nothing when no projected attribute changes.
//! - A read bills 4 KB units of the items returned, half for an eventually consistent read; a
//!   transactional read twice.
//!
//! Every unit is also charged to the partition key value it lands on (table or index), the heat
//! that says whether a busy tenant concentrates its writes on one partition.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::size::item_size;
use crate::template::TableDef;

/// What an index keeps of an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projection {
    All,
    KeysOnly,
    Include(Vec<String>),
}

/// A global secondary index, as billing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSchema {
    pub name: String,
    pub hash: String,
    pub range: Option<String>,
    pub projection: Projection,
}

/// A table, as billing sees it: its logical name (for reports), keys and indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub logical_id: String,
    pub hash: String,
    pub range: Option<String>,
    pub indexes: Vec<IndexSchema>,
}

impl TableSchema {
    /// The schema of a table as template.yaml declares it.
    pub fn from_def(def: &TableDef) -> Self {
        let (hash, range) = keys(&def.key_schema);
        Self {
            logical_id: def.logical_id.clone(),
            hash,
            range,
            indexes: def
                .indexes
                .iter()
                .map(|index| {
                    let (hash, range) = keys(&index.key_schema);
                    IndexSchema {
                        name: index.name.clone(),
                        hash,
                        range,
                        projection: match index.projection_type.as_str() {
                            "ALL" => Projection::All,
                            "INCLUDE" => Projection::Include(index.non_key_attributes.clone()),
                            _ => Projection::KeysOnly,
                        },
                    }
                })
                .collect(),
        }
    }

    /// The key attributes' names.
    pub fn key_names(&self) -> Vec<&str> {
        std::iter::once(self.hash.as_str())
            .chain(self.range.as_deref())
            .collect()
    }

    /// The item's key.
    pub fn key_of(&self, item: &Map<String, Value>) -> Map<String, Value> {
        self.key_names()
            .into_iter()
            .filter_map(|k| item.get(k).map(|v| (k.to_owned(), v.clone())))
            .collect()
    }

    /// The item's entry in `index`, if it carries the index's keys (sparse indexes).
    fn index_entry(
        &self,
        index: &IndexSchema,
        item: &Map<String, Value>,
    ) -> Option<Map<String, Value>> {
        let index_keys: Vec<&str> = std::iter::once(index.hash.as_str())
            .chain(index.range.as_deref())
            .collect();
        if index_keys.iter().any(|k| !item.contains_key(*k)) {
            return None;
        }
        let keep = |name: &str| {
            index_keys.contains(&name)
                || self.key_names().contains(&name)
                || match &index.projection {
                    Projection::All => true,
                    Projection::KeysOnly => false,
                    Projection::Include(names) => names.iter().any(|n| n == name),
                }
        };
        Some(
            item.iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }
}

fn keys(schema: &[(String, String)]) -> (String, Option<String>) {
    let find = |kind: &str| {
        schema
            .iter()
            .find(|(_, k)| k == kind)
            .map(|(name, _)| name.clone())
    };
    (find("HASH").unwrap_or_default(), find("RANGE"))
}

/// One item a write touched, as it was before the call and after it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ItemImage {
    /// The table's physical name.
    pub table: String,
    pub before: Option<Map<String, Value>>,
    pub after: Option<Map<String, Value>>,
}

/// Units consumed, by table or `table/index`, and by partition key value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Units {
    pub write: BTreeMap<String, f64>,
    pub read: BTreeMap<String, f64>,
    /// (table or `table/index`, partition key value) → write units.
    pub write_heat: BTreeMap<(String, String), f64>,
    /// (table or `table/index`, partition key value) → read units.
    pub read_heat: BTreeMap<(String, String), f64>,
}

impl Units {
    pub fn total_write(&self) -> f64 {
        self.write.values().sum()
    }

    pub fn total_read(&self) -> f64 {
        self.read.values().sum()
    }

    pub fn add(&mut self, other: &Units) {
        for (k, v) in &other.write {
            *self.write.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.read {
            *self.read.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.write_heat {
            *self.write_heat.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.read_heat {
            *self.read_heat.entry(k.clone()).or_default() += v;
        }
    }

    fn write_to(&mut self, place: &str, key: String, units: f64) {
        *self.write.entry(place.to_owned()).or_default() += units;
        *self.write_heat.entry((place.to_owned(), key)).or_default() += units;
    }

    fn read_from(&mut self, place: &str, key: Option<String>, units: f64) {
        *self.read.entry(place.to_owned()).or_default() += units;
        if let Some(key) = key {
            *self.read_heat.entry((place.to_owned(), key)).or_default() += units;
        }
    }
}

/// The billing rules over the tables of one stack, by physical name.
#[derive(Debug, Clone, Default)]
pub struct Billing {
    pub tables: BTreeMap<String, TableSchema>,
}

const WRITE_UNIT: u64 = 1024;
const READ_UNIT: u64 = 4096;

fn write_units(bytes: u64) -> f64 {
    bytes.div_ceil(WRITE_UNIT).max(1) as f64
}

fn read_units(bytes: u64) -> f64 {
    bytes.div_ceil(READ_UNIT).max(1) as f64
}

/// A partition key value as text (`S`, `N` or base64 `B`).
fn key_text(value: Option<&Value>) -> String {
    value
        .and_then(Value::as_object)
        .and_then(|o| o.values().next())
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned()
}

impl Billing {
    /// The schema of a table's physical name.
    pub fn table(&self, name: &str) -> Option<&TableSchema> {
        self.tables.get(name)
    }

    fn place(&self, table: &str) -> String {
        self.table(table)
            .map_or_else(|| table.to_owned(), |t| t.logical_id.clone())
    }

    /// The units of a write call: its item images, whether it took effect, and whether it ran
    /// inside a transaction.
    pub fn writes(&self, images: &[ItemImage], succeeded: bool, transactional: bool) -> Units {
        let mut units = Units::default();
        for image in images {
            let Some(schema) = self.table(&image.table) else {
                continue;
            };
            let place = self.place(&image.table);
            let before = image.before.as_ref().map_or(0, item_size);
            let after = image.after.as_ref().map_or(0, item_size);
            let pk = key_text(
                image
                    .after
                    .as_ref()
                    .or(image.before.as_ref())
                    .and_then(|i| i.get(&schema.hash)),
            );
            let table_units = if succeeded {
                write_units(before.max(after)) * if transactional { 2.0 } else { 1.0 }
            } else {
                write_units(before)
            };
            units.write_to(&place, pk, table_units);
            if !succeeded {
                continue;
            }
            for index in &schema.indexes {
                let old = image
                    .before
                    .as_ref()
                    .and_then(|i| schema.index_entry(index, i));
                let new = image
                    .after
                    .as_ref()
                    .and_then(|i| schema.index_entry(index, i));
                let at = format!("{place}/{}", index.name);
                let hash_of = |e: &Map<String, Value>| key_text(e.get(&index.hash));
                let key_of = |e: &Map<String, Value>| {
                    (
                        e.get(&index.hash).cloned(),
                        index.range.as_ref().and_then(|r| e.get(r).cloned()),
                    )
                };
                match (old, new) {
                    (None, None) => {}
                    (None, Some(n)) => units.write_to(&at, hash_of(&n), write_units(item_size(&n))),
                    (Some(o), None) => units.write_to(&at, hash_of(&o), write_units(item_size(&o))),
                    (Some(o), Some(n)) if key_of(&o) != key_of(&n) => {
                        units.write_to(&at, hash_of(&o), write_units(item_size(&o)));
                        units.write_to(&at, hash_of(&n), write_units(item_size(&n)));
                    }
                    (Some(o), Some(n)) if o != n => {
                        units.write_to(
                            &at,
                            hash_of(&n),
                            write_units(item_size(&o).max(item_size(&n))),
                        );
                    }
                    (Some(_), Some(_)) => {}
                }
            }
        }
        units
    }

    /// The units of a read call, from its request and answer.
    pub fn reads(&self, operation: &str, request: &Value, response: &Value) -> Units {
        let mut units = Units::default();
        let consistent = |r: &Value| r.get("ConsistentRead").and_then(Value::as_bool) == Some(true);
        let factor = |consistent: bool| if consistent { 1.0 } else { 0.5 };
        let table = request
            .get("TableName")
            .and_then(Value::as_str)
            .unwrap_or("");
        match operation {
            "GetItem" => {
                let size = response
                    .get("Item")
                    .and_then(Value::as_object)
                    .map_or(0, item_size);
                let pk = self.table(table).and_then(|t| {
                    request
                        .get("Key")
                        .and_then(|k| k.get(&t.hash))
                        .map(|v| key_text(Some(v)))
                });
                units.read_from(
                    &self.place(table),
                    pk,
                    read_units(size) * factor(consistent(request)),
                );
            }
            "BatchGetItem" | "TransactGetItems" => {
                let transactional = operation == "TransactGetItems";
                let asked = request.get("RequestItems").and_then(Value::as_object);
                let answered = response.get("Responses");
                if transactional {
                    let items = answered
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    for item in items {
                        let size = item
                            .get("Item")
                            .and_then(Value::as_object)
                            .map_or(0, item_size);
                        units.read_from("transaction", None, read_units(size) * 2.0);
                    }
                    return units;
                }
                for (table, ask) in asked.into_iter().flatten() {
                    let wanted = ask
                        .get("Keys")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len);
                    let got: Vec<Value> = answered
                        .and_then(|r| r.get(table))
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let f = factor(consistent(ask));
                    let place = self.place(table);
                    for item in &got {
                        let item = item.as_object().cloned().unwrap_or_default();
                        let pk = self.table(table).map(|t| key_text(item.get(&t.hash)));
                        units.read_from(&place, pk, read_units(item_size(&item)) * f);
                    }
                    // A key not found still costs the minimum.
                    for _ in got.len()..wanted {
                        units.read_from(&place, None, f);
                    }
                }
            }
            "Query" | "Scan" => {
                let size: u64 = response
                    .get("Items")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_object)
                    .map(item_size)
                    .sum();
                let place = match request.get("IndexName").and_then(Value::as_str) {
                    Some(index) => format!("{}/{index}", self.place(table)),
                    None => self.place(table),
                };
                units.read_from(&place, None, read_units(size) * factor(consistent(request)));
            }
            _ => {}
        }
        units
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn billing() -> Billing {
        let schema = TableSchema {
            logical_id: "Events".into(),
            hash: "pk".into(),
            range: None,
            indexes: vec![IndexSchema {
                name: "by_status".into(),
                hash: "status_key".into(),
                range: Some("at".into()),
                projection: Projection::KeysOnly,
            }],
        };
        Billing {
            tables: BTreeMap::from([("dev-events".to_owned(), schema)]),
        }
    }

    fn item(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn image(before: Option<Value>, after: Option<Value>) -> ItemImage {
        ItemImage {
            table: "dev-events".into(),
            before: before.map(item),
            after: after.map(item),
        }
    }

    #[test]
    fn an_update_bills_the_larger_image_and_moves_the_index_entry() {
        let big = "x".repeat(1500);
        let before = json!({"pk": {"S": "a"}, "payload": {"S": big}, "status_key": {"S": "t#received"}, "at": {"N": "1"}});
        let after = json!({"pk": {"S": "a"}, "status_key": {"S": "t#done"}, "at": {"N": "2"}});
        let units = billing().writes(&[image(Some(before), Some(after))], true, false);
        // 2 units for the table (the larger image), a delete and a put in the index.
        assert_eq!(units.write["Events"], 2.0);
        assert_eq!(units.write["Events/by_status"], 2.0);
        assert_eq!(
            units.write_heat[&("Events/by_status".to_owned(), "t#received".to_owned())],
            1.0
        );
        assert_eq!(
            units.write_heat[&("Events/by_status".to_owned(), "t#done".to_owned())],
            1.0
        );
    }

    #[test]
    fn transactions_double_the_table_write_and_failures_bill_the_checked_item() {
        let it = json!({"pk": {"S": "a"}});
        let done = billing().writes(&[image(None, Some(it.clone()))], true, true);
        assert_eq!(done.total_write(), 2.0);
        let refused = billing().writes(&[image(Some(it.clone()), Some(it))], false, false);
        assert_eq!(refused.total_write(), 1.0);
    }

    #[test]
    fn an_unchanged_projection_writes_nothing_to_the_index() {
        let before =
            json!({"pk": {"S": "a"}, "status_key": {"S": "k"}, "at": {"N": "1"}, "n": {"N": "1"}});
        let after =
            json!({"pk": {"S": "a"}, "status_key": {"S": "k"}, "at": {"N": "1"}, "n": {"N": "2"}});
        let units = billing().writes(&[image(Some(before), Some(after))], true, false);
        assert_eq!(units.write.get("Events/by_status"), None);
    }

    #[test]
    fn reads_bill_four_kilobyte_units_half_for_eventual_consistency() {
        let request = json!({"TableName": "dev-events", "Key": {"pk": {"S": "a"}}});
        let response = json!({"Item": {"pk": {"S": "a"}, "b": {"S": "x".repeat(5000)}}});
        assert_eq!(
            billing().reads("GetItem", &request, &response).total_read(),
            1.0
        );
        let consistent =
            json!({"TableName": "dev-events", "ConsistentRead": true, "Key": {"pk": {"S": "a"}}});
        assert_eq!(
            billing()
                .reads("GetItem", &consistent, &response)
                .total_read(),
            2.0
        );
        assert_eq!(
            billing()
                .reads("GetItem", &consistent, &json!({}))
                .total_read(),
            1.0
        );
    }
}
