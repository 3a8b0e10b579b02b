//! `GET /v1/openapi.json`: the OpenAPI 3.1 description of this API, for generating clients.
//! The document is written by hand (`functions/api/openapi.json`, checked by
//! `openapi-spec-validator` in `make lint`) and held to the code by the tests below: its paths
//! are exactly [`crate::ROUTES`], and what the handlers answer matches its schemas.

use std::sync::LazyLock;

use serde_json::Value;

/// The document's text, as shipped in the binary.
pub const TEXT: &str = include_str!("../openapi.json");

static DOCUMENT: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(TEXT).unwrap_or(Value::Null));

/// The document, parsed once.
pub fn document() -> Value {
    DOCUMENT.clone()
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeSet, collections::HashMap, sync::Arc};

    use lambda_http::{Body, RequestExt};
    use serde_json::json;
    use shared::{
        clock::ManualClock,
        ids::TenantId,
        memory::{MemoryDeliveryQueue, MemoryOutboundStore},
        outbound::{Outbound, admin::EndpointChange},
    };

    use super::*;
    use crate::{ROUTES, handle};

    type TestOutbound = Outbound<MemoryOutboundStore, Arc<MemoryDeliveryQueue>, ManualClock>;

    async fn outbound() -> TestOutbound {
        let outbound = crate::tests::outbound();
        outbound
            .add_endpoint(
                &TenantId::parse("acme").expect("tenant"),
                EndpointChange {
                    url: Some("https://partner.example/hooks".into()),
                    ..EndpointChange::default()
                },
                None,
            )
            .await
            .expect("endpoint");
        outbound
    }

    async fn call(
        o: &TestOutbound,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let request = lambda_http::http::Request::builder()
            .method(method)
            .uri(path)
            .body(Body::Text(body.map(Value::to_string).unwrap_or_default()))
            .expect("request")
            .with_path_parameters(HashMap::from([("tenant".to_owned(), "acme".to_owned())]));
        let response = handle(o, request).await.expect("answered");
        let text = match response.body() {
            Body::Text(t) => t.clone(),
            _ => String::new(),
        };
        (
            response.status().as_u16(),
            serde_json::from_str(&text).expect("a JSON answer"),
        )
    }

    /// Follow a `$ref` within the document.
    fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
        match value["$ref"].as_str() {
            Some(pointer) => resolve(
                doc,
                doc.pointer(pointer.trim_start_matches('#'))
                    .unwrap_or(&Value::Null),
            ),
            None => value,
        }
    }

    /// How `value` breaks `schema`, a schema of the document (its `$ref`s resolve in it).
    fn breaks(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
        let mut rooted = schema.clone();
        if let Some(object) = rooted.as_object_mut() {
            object.insert("components".into(), doc["components"].clone());
        }
        let validator = jsonschema::draft202012::new(&rooted).expect("a valid schema");
        validator
            .iter_errors(value)
            .map(|e| e.to_string())
            .collect()
    }

    /// `answer` is what the document promises for `status` of `method` at `template`.
    fn check_answer(doc: &Value, method: &str, template: &str, status: u16, answer: &Value) {
        let operation = &doc["paths"][template][method];
        let response = resolve(doc, &operation["responses"][status.to_string()]);
        assert!(
            response.is_object(),
            "{method} {template} answered {status}, which the document does not list: {answer}"
        );
        let schema = &response["content"]["application/json"]["schema"];
        let errors = breaks(doc, schema, answer);
        assert!(
            errors.is_empty(),
            "{method} {template} {status}: {answer} breaks the document: {errors:?}"
        );
    }

    #[test]
    fn the_documents_request_examples_match_its_request_schemas() {
        let doc = document();
        let mut checked = 0;
        for (template, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                let content = &operation["requestBody"]["content"]["application/json"];
                if content.is_null() {
                    continue;
                }
                let errors = breaks(&doc, &content["schema"], &content["example"]);
                assert!(errors.is_empty(), "{method} {template}: {errors:?}");
                checked += 1;
            }
        }
        assert_eq!(checked, 3);
        let change = &doc["components"]["schemas"]["EventTypeChange"];
        assert!(!breaks(&doc, change, &json!({"name": "renamed"})).is_empty());
    }

    #[test]
    fn the_document_is_openapi_3_1_and_lists_exactly_the_routes_the_handler_serves() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .expect("path item")
                    .keys()
                    .filter(|k| *k != "parameters")
                    .map(move |method| (method.to_uppercase(), path.clone()))
            })
            .collect();
        let served: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        assert_eq!(documented, served);
    }

    #[tokio::test]
    async fn every_route_is_served_and_answers_as_the_document_says() {
        let doc = document();
        let o = outbound().await;
        let example = |template: &str, method: &str| {
            doc["paths"][template][method]["requestBody"]["content"]["application/json"]["example"]
                .clone()
        };
        let types = "/v1/tenants/{tenant}/event-types";
        let one_type = "/v1/tenants/{tenant}/event-types/{name}";
        let messages = "/v1/tenants/{tenant}/messages";

        let steps: Vec<(&str, &str, String, Option<Value>, u16)> = vec![
            (
                "get",
                "/v1/openapi.json",
                "/v1/openapi.json".into(),
                None,
                200,
            ),
            (
                "post",
                types,
                "/v1/tenants/acme/event-types".into(),
                Some(example(types, "post")),
                201,
            ),
            (
                "post",
                types,
                "/v1/tenants/acme/event-types".into(),
                Some(example(types, "post")),
                409,
            ),
            (
                "get",
                types,
                "/v1/tenants/acme/event-types".into(),
                None,
                200,
            ),
            (
                "get",
                one_type,
                "/v1/tenants/acme/event-types/invoice.paid".into(),
                None,
                200,
            ),
            (
                "get",
                one_type,
                "/v1/tenants/acme/event-types/invoice.void".into(),
                None,
                404,
            ),
            (
                "post",
                messages,
                "/v1/tenants/acme/messages".into(),
                Some(example(messages, "post")),
                202,
            ),
            (
                "post",
                messages,
                "/v1/tenants/acme/messages".into(),
                Some(example(messages, "post")),
                200,
            ),
            (
                "post",
                messages,
                "/v1/tenants/acme/messages".into(),
                Some(
                    json!({"event_type": "invoice.paid", "payload": {"id": "inv_2", "amount": -5}}),
                ),
                422,
            ),
            (
                "post",
                messages,
                "/v1/tenants/acme/messages".into(),
                Some(json!({"event_type": "x"})),
                400,
            ),
            (
                "post",
                types,
                "/v1/tenants/acme/event-types".into(),
                Some(json!({"name": "order.shipped", "schema": {"type": "strnig"}})),
                422,
            ),
            (
                "patch",
                one_type,
                "/v1/tenants/acme/event-types/invoice.paid".into(),
                Some(example(one_type, "patch")),
                200,
            ),
            (
                "patch",
                one_type,
                "/v1/tenants/acme/event-types/invoice.void".into(),
                Some(json!({})),
                404,
            ),
        ];
        for (method, template, path, body, status) in steps {
            let (got, answer) = call(&o, &method.to_uppercase(), &path, body.as_ref()).await;
            assert_eq!(got, status, "{method} {path}: {answer}");
            check_answer(&doc, method, template, got, &answer);
        }
        let (status, mismatch) = call(
            &o,
            "POST",
            "/v1/tenants/acme/messages",
            Some(&json!({"event_type": "invoice.paid", "payload": {"id": 7, "amount": 1}})),
        )
        .await;
        assert_eq!(
            (status, &mismatch["pointer"], &mismatch["keyword"]),
            (422, &json!("/id"), &json!("type"))
        );
    }
}
