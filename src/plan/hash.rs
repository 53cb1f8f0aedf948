//! The identity of a request: what would be paid for.
//!
//! Two step instances with the same operation, the same resolved fields and
//! the same price table ask the service for the same work; reuse across runs
//! and the journal are keyed by this hash.

use sha2::{Digest, Sha256};

/// `sha256:<hex>` of the operation, the fields in canonical form (keys
/// sorted at every level) and the price table version.
pub fn request_hash(
    operation: &str,
    fields: &serde_json::Map<String, serde_json::Value>,
    price_version: &str,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(operation.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical(&serde_json::Value::Object(fields.clone())).as_bytes());
    hasher.update(b"\n");
    hasher.update(price_version.as_bytes());
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

fn canonical(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::Value::String(k.clone()),
                        canonical(&map[k])
                    )
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
        serde_json::Value::Array(items) => format!(
            "[{}]",
            items.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn key_order_does_not_matter_but_values_do() {
        let a = request_hash(
            "create_music",
            &map(json!({"mv": "sonic-v5", "tags": "pop"})),
            "t1",
        );
        let b = request_hash(
            "create_music",
            &map(json!({"tags": "pop", "mv": "sonic-v5"})),
            "t1",
        );
        assert_eq!(a, b);
        assert_ne!(
            a,
            request_hash(
                "create_music",
                &map(json!({"tags": "rock", "mv": "sonic-v5"})),
                "t1"
            )
        );
        assert_ne!(
            a,
            request_hash(
                "cover_music",
                &map(json!({"tags": "pop", "mv": "sonic-v5"})),
                "t1"
            )
        );
        assert_ne!(
            a,
            request_hash(
                "create_music",
                &map(json!({"tags": "pop", "mv": "sonic-v5"})),
                "t2"
            )
        );
        assert!(a.starts_with("sha256:"));
    }
}
