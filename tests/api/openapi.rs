use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

/// The committed spec must be what the code generates. Rewrite it with
/// `UPDATE_OPENAPI=1 cargo test --test api openapi`.
#[tokio::test]
async fn the_committed_spec_matches_the_code() {
    let generated = repairdesk::routes::openapi::spec_json();
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

/// The spec must state what the server answers: errors as `application/problem+json`, and the
/// errors of the shared extractors (token, JSON body, path) on every operation that has them.
/// Found by schemathesis (`scripts/fuzz.sh`): it flagged each of these as undocumented.
#[tokio::test]
async fn the_spec_documents_problem_json_and_the_extractors_errors() {
    let spec: Value = serde_json::from_str(&repairdesk::routes::openapi::spec_json()).unwrap();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            for (status, response) in responses {
                let Some(content) = response["content"].as_object() else { continue };
                let problem = content.values().any(|c| c["schema"]["$ref"] == "#/components/schemas/Problem");
                if problem {
                    assert!(
                        content.contains_key("application/problem+json") && !content.contains_key("application/json"),
                        "{method} {path} {status}: errors are application/problem+json"
                    );
                }
            }
            let expected: &[&str] = match (op.get("security").is_some(), op.get("requestBody").is_some()) {
                (true, true) => &["400", "401", "413", "415", "422"],
                (true, false) => &["401"],
                (false, true) => &["400", "413", "415", "422"],
                (false, false) => &[],
            };
            for status in expected {
                assert!(responses.contains_key(*status), "{method} {path} documents {status}");
            }
            if path.contains('{') {
                assert!(responses.contains_key("404"), "{method} {path} documents 404");
            }
        }
    }

    // and what the fuzzer saw: an admin claiming is 403, a documented answer of claim
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let res = app.post("/api/v1/tickets/no-such-ticket/claim", &admin, &json!({})).await;
    assert_problem(res, 403, "forbidden").await;
    assert!(spec["paths"]["/api/v1/tickets/{id}/claim"]["post"]["responses"]["403"].is_object());
    let res = app.request(Method::GET, "/api/v1/me", None, None).await;
    assert_problem(res, 401, "missing_token").await;
}

/// Every write that takes an `Idempotency-Key` says so, and documents the answers the key brings:
/// `409 idempotency_key_in_use` and `422 idempotency_key_reused`.
#[test]
fn every_write_documents_its_idempotency_key_answers() {
    let spec: Value = serde_json::from_str(&repairdesk::routes::openapi::spec_json()).unwrap();
    let mut writes = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let write = matches!(method.as_str(), "post" | "patch" | "put" | "delete");
            if !write || op.get("security").is_none() || path.starts_with("/api/v1/auth/") {
                continue;
            }
            writes += 1;
            let params = op["parameters"].as_array().map(Vec::as_slice).unwrap_or_default();
            assert!(
                params.iter().any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"),
                "{method} {path} takes an Idempotency-Key"
            );
            let said = |status: &str| op["responses"][status]["description"].as_str().unwrap_or_default().to_owned();
            assert!(said("409").contains("idempotency_key_in_use"), "{method} {path} documents 409");
            assert!(said("422").contains("idempotency_key_reused"), "{method} {path} documents 422");
        }
    }
    assert!(writes > 20, "{writes}");
}

/// Path parameters are exactly the path template's `{names}`; everything else a handler reads
/// from the URL is an optional query parameter. A query parameter once declared `in: path` was
/// never sent by a generated client, nor by the fuzzer.
#[test]
fn path_parameters_are_the_templates_and_query_parameters_are_optional() {
    let spec: Value = serde_json::from_str(&repairdesk::routes::openapi::spec_json()).unwrap();
    let mut queries = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        let template: Vec<&str> =
            path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
        for (method, op) in item.as_object().unwrap() {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let declared: Vec<&str> =
                params.iter().filter(|p| p["in"] == "path").map(|p| p["name"].as_str().unwrap()).collect();
            assert_eq!(declared, template, "{method} {path}: path parameters");
            for p in params.iter().filter(|p| p["in"] == "path") {
                assert_eq!(p["required"], true, "{method} {path} {}: a path parameter is required", p["name"]);
            }
            for p in params.iter().filter(|p| p["in"] == "query") {
                assert_ne!(p["required"], true, "{method} {path} {}: query parameters are optional", p["name"]);
                queries.push(format!("{method} {path}?{}", p["name"].as_str().unwrap()));
            }
        }
    }
    for expected in [
        "get /api/v1/tickets?status",
        "get /api/v1/tickets?created_after",
        "get /api/v1/escalations?open",
        "get /api/v1/users?role",
        "get /api/v1/sync/rejections?site_id",
        "delete /api/v1/tickets/{id}/materials/{line_id}?version",
    ] {
        assert!(queries.iter().any(|q| q == expected), "{expected} is a query parameter: {queries:?}");
    }
}

/// `docs/transitions.md` is the transition table the commands check (`domain::ticket::MOVES`).
/// Rewrite it with `UPDATE_DOCS=1 cargo test --test api transitions`.
#[test]
fn the_transitions_doc_is_the_table_the_commands_check() {
    let generated = repairdesk::domain::ticket::transitions_markdown();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/transitions.md");
    if std::env::var("UPDATE_DOCS").is_ok_and(|v| v == "1") {
        std::fs::write(path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/transitions.md is stale: run UPDATE_DOCS=1 cargo test --test api transitions"
    );
}

/// The ticket's and the quote's statuses in the API doc are the domain's, every one of them.
#[test]
fn the_spec_lists_every_status_of_the_domain() {
    use repairdesk::domain::ticket::{QuoteStatus, Status};
    let spec: Value = serde_json::from_str(&repairdesk::routes::openapi::spec_json()).unwrap();
    let schemas = &spec["components"]["schemas"];
    let listed = |name: &str| -> Vec<String> {
        let values = schemas[name]["enum"].as_array().unwrap_or_else(|| panic!("{name} has no enum"));
        values.iter().map(|v| v.as_str().unwrap().to_owned()).collect()
    };
    let statuses: Vec<String> = Status::ALL.iter().map(|s| s.as_str().to_owned()).collect();
    assert_eq!(listed("Status"), statuses);
    let quote_statuses: Vec<String> = QuoteStatus::ALL.iter().map(|s| s.as_str().to_owned()).collect();
    assert_eq!(listed("QuoteStatus"), quote_statuses);
    assert_eq!(schemas["TicketView"]["properties"]["status"]["$ref"], "#/components/schemas/Status");
}

/// What is served is what is documented: every documented operation reaches its handler (none
/// answers "route not found" or 405), and every other method on a documented path answers 405
/// with exactly the documented methods in `Allow`.
#[tokio::test]
async fn the_router_serves_exactly_the_documented_operations() {
    let app = spawn_app().await;
    let spec: Value = serde_json::from_str(&repairdesk::routes::openapi::spec_json()).unwrap();
    let all = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];
    let mut operations = 0;
    for (template, item) in spec["paths"].as_object().unwrap() {
        let path = template.replace("{id}", "no-such-id").replace("{line_id}", "no-such-line");
        assert!(!path.contains('{'), "{template}: a path parameter this test does not fill");
        let documented: Vec<&Method> = all.iter().filter(|m| item.get(m.as_str().to_lowercase()).is_some()).collect();
        for method in &all {
            // a token-less request: stopped by auth or by the handler, never by the router
            let res = app.request(method.clone(), &path, None, None).await;
            let status = res.status().as_u16();
            let allow = res.headers().get("allow").map(|v| v.to_str().unwrap().to_owned());
            let body: Value = res.json().await.unwrap_or(Value::Null);
            if documented.contains(&method) {
                operations += 1;
                assert_ne!(status, 405, "{method} {template} is documented but refused: {body}");
                assert_ne!(body["detail"], "route not found", "{method} {template} is documented but not served");
            } else {
                assert_eq!(status, 405, "{method} {template} is not documented but answered {status}: {body}");
                let expected: Vec<&str> = documented.iter().map(|m| m.as_str()).collect();
                assert_eq!(allow.as_deref(), Some(expected.join(", ").as_str()), "{template}");
            }
        }
    }
    assert!(operations >= 47, "only {operations} operations documented");
    let res = app.request(Method::GET, "/api/v1/tickets/x/nothing-here", None, None).await;
    assert_problem(res, 404, "not_found").await;
}
