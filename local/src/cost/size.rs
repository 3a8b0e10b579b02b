//! DynamoDB's item size, computed as the service bills it, from the wire's JSON form
//! (`{"S": "..."}`, `{"N": "12"}`, ...): attribute names plus values, where a string is its
//! UTF-8 bytes, a number one byte per two significant digits plus one, a binary its decoded
//! bytes, a boolean or null one byte, and a list or map 3 bytes plus 1 per element.

use base64::Engine as _;
use serde_json::{Map, Value};

/// The size of an item (a map of attribute name → typed value).
pub fn item_size(item: &Map<String, Value>) -> u64 {
    item.iter()
        .map(|(name, value)| name.len() as u64 + value_size(value))
        .sum()
}

/// The size of one typed value.
pub fn value_size(value: &Value) -> u64 {
    let Some((kind, inner)) = value.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    match (kind.as_str(), inner) {
        ("S", Value::String(s)) => s.len() as u64,
        ("N", Value::String(n)) => number_size(n),
        ("B", Value::String(b)) => binary_size(b),
        ("BOOL" | "NULL", _) => 1,
        ("SS", Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|s| s.len() as u64)
            .sum(),
        ("NS", Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(number_size)
            .sum(),
        ("BS", Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(binary_size)
            .sum(),
        ("L", Value::Array(items)) => 3 + items.iter().map(|v| 1 + value_size(v)).sum::<u64>(),
        ("M", Value::Object(map)) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() as u64 + value_size(v))
                .sum::<u64>()
        }
        _ => 0,
    }
}

/// One byte per two significant digits (leading and trailing zeros trimmed), plus one.
fn number_size(n: &str) -> u64 {
    let digits: String = n
        .trim_start_matches('-')
        .split(['e', 'E'])
        .next()
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let significant = digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .len()
        .max(1) as u64;
    significant.div_ceil(2) + 1
}

fn binary_size(b: &str) -> u64 {
    base64::engine::general_purpose::STANDARD
        .decode(b)
        .map_or(b.len() as u64 * 3 / 4, |bytes| bytes.len() as u64)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn item(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn sizes_follow_the_billing_rules() {
        // "pk" (2) + "acme#1" (6); "n" (1) + 12345 (3 digits pairs + 1 = 4); "b" (1) + 3 bytes.
        let i = item(json!({"pk": {"S": "acme#1"}, "n": {"N": "12345"}, "b": {"B": "AQID"}}));
        assert_eq!(item_size(&i), 8 + 5 + 4);
        assert_eq!(value_size(&json!({"BOOL": true})), 1);
        assert_eq!(value_size(&json!({"N": "1000"})), 2);
        assert_eq!(value_size(&json!({"N": "-0.0125"})), 3);
        // A list: 3 + (1 + 1) + (1 + 2).
        assert_eq!(value_size(&json!({"L": [{"S": "a"}, {"S": "bc"}]})), 8);
        // A map: 3 + (1 + "k" + 1 byte value).
        assert_eq!(value_size(&json!({"M": {"k": {"NULL": true}}})), 6);
    }
}
