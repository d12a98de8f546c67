//! The OpenAPI document against the server that serves it: every documented
//! operation is routed (not the JSON 404 or 405 of an unknown route or
//! method), with the notes routes mounted as they are in production.

mod common;

use common::*;
use serde_json::Value;

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let backend = Backend::ready(&jwks, &[("NOTES_TABLE", "notes")]).await;
    let (status, _, body) = get(&backend.url("/openapi.json"), &[]).await;
    assert_eq!(status, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 13, "{:?}", paths.keys());
    let client = client();
    for (path, item) in paths {
        let url = backend.url(&path.replace("{id}", "n1"));
        for method in item.as_object().unwrap().keys() {
            let method: reqwest::Method = method.to_uppercase().parse().unwrap();
            let r = client.request(method.clone(), &url).send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            let code = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(String::from));
            assert!(
                !matches!(code.as_deref(), Some("not_found" | "method_not_allowed")),
                "{method} {path}: {status} {text}"
            );
        }
    }
    backend.stop().await;
}
