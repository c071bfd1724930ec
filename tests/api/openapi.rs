use reqwest::Method;

use crate::helpers::*;

/// The committed spec must be what the code generates. Rewrite it with
/// `UPDATE_OPENAPI=1 cargo test --test api openapi`.
#[tokio::test]
async fn the_committed_spec_matches_the_code() {
    let generated = repairdesk::openapi::spec_json();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run UPDATE_OPENAPI=1 cargo test --test api openapi"
    );

    let app = spawn_app().await;
    let served = app.request(Method::GET, "/api/v1/openapi.json", None, None).await.text().await.unwrap();
    assert_eq!(served, generated);
}
