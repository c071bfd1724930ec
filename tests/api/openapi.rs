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
        std::fs::write(path, generated).unwrap();
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
    let spec: Value = serde_json::from_str(repairdesk::routes::openapi::spec_json()).unwrap();
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
    let spec: Value = serde_json::from_str(repairdesk::routes::openapi::spec_json()).unwrap();
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
    let spec: Value = serde_json::from_str(repairdesk::routes::openapi::spec_json()).unwrap();
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
    let spec: Value = serde_json::from_str(repairdesk::routes::openapi::spec_json()).unwrap();
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
    let spec: Value = serde_json::from_str(repairdesk::routes::openapi::spec_json()).unwrap();
    let all = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];
    let mut operations = 0;
    for (template, item) in spec["paths"].as_object().unwrap() {
        let path = template
            .replace("{id}", "no-such-id")
            .replace("{line_id}", "no-such-line")
            .replace("{number}", "no-such-number");
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

fn committed_spec() -> Value {
    serde_json::from_str(repairdesk::routes::openapi::spec_json()).unwrap()
}

/// A property of a component schema, which must be there.
fn property(spec: &Value, schema: &str, name: &str) -> Value {
    let property = spec["components"]["schemas"][schema]["properties"][name].clone();
    assert!(property.is_object(), "{schema}.{name} is not in the spec");
    property
}

/// The values of the enum a schema names (by `$ref`, possibly beside `null`).
fn enum_of(spec: &Value, schema: &Value) -> Vec<String> {
    let named = schema["oneOf"].as_array().and_then(|o| o.iter().find(|s| s.get("$ref").is_some())).unwrap_or(schema);
    let name = named["$ref"].as_str().unwrap_or_else(|| panic!("not an enum by reference: {schema}"));
    let values = &spec["components"]["schemas"][name.rsplit('/').next().unwrap()]["enum"];
    values.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

fn texts<T: Copy>(all: &[T], text: fn(T) -> &'static str) -> Vec<String> {
    all.iter().map(|v| text(*v).to_owned()).collect()
}

/// What the server checks in a body or a query is what the spec states, from the same constants:
/// lengths, ranges, patterns, enums, required fields, and the condition of a field required only
/// with another. `UPDATE_OPENAPI=1` rewrites the committed spec from the attributes; this fails when
/// an attribute no longer says what its constant does.
#[test]
fn the_spec_states_the_field_rules_the_server_checks() {
    use repairdesk::auth::password;
    use repairdesk::commands;
    use repairdesk::domain::category::Category;
    use repairdesk::domain::material::{self, SuppliedBy};
    use repairdesk::domain::ticket::{self, Area, Channel, HoldReason, Status, TicketForm, Urgency};
    use repairdesk::domain::user::{self, Role};
    use repairdesk::domain::{phone, site, NOT_BLANK};
    use repairdesk::idempotency;
    use repairdesk::routes::tickets::{DEFAULT_LIMIT, LIMIT};

    let spec = committed_spec();
    let at = |schema: &str, name: &str| property(&spec, schema, name);

    let longest: &[(&str, &str, usize)] = &[
        ("TicketForm", "site_id", ticket::MAX_SITE_ID),
        ("TicketForm", "location", ticket::MAX_LOCATION),
        ("TicketForm", "description", ticket::MAX_DESCRIPTION),
        ("TicketForm", "reporter_name", ticket::MAX_REPORTER_NAME),
        ("ReasonBody", "reason", commands::MAX_REASON),
        ("AssignBody", "reason", commands::MAX_REASON),
        ("PhoneVerification", "note", commands::MAX_MOVE_NOTE),
        ("InspectBody", "note", commands::MAX_MOVE_NOTE),
        ("HoldBody", "note", commands::MAX_MOVE_NOTE),
        ("QuoteBody", "note", commands::MAX_MOVE_NOTE),
        ("AcceptQuoteBody", "note", commands::MAX_MOVE_NOTE),
        ("DeclineBody", "note", commands::MAX_MOVE_NOTE),
        ("NoteBody", "note", commands::MAX_NOTE),
        ("CompleteBody", "result", commands::MAX_RESULT),
        ("CallbackBody", "comment", commands::MAX_COMMENT),
        ("NewMaterial", "name", material::MAX_NAME),
        ("NewMaterial", "spec", material::MAX_SPEC),
        ("NewMaterial", "model", material::MAX_SPEC),
        ("NewMaterial", "unit", material::MAX_UNIT),
        ("MaterialPatch", "name", material::MAX_NAME),
        ("MaterialPatch", "spec", material::MAX_SPEC),
        ("MaterialPatch", "model", material::MAX_SPEC),
        ("MaterialPatch", "unit", material::MAX_UNIT),
        ("NewItem", "name", material::MAX_NAME),
        ("NewItem", "spec", material::MAX_SPEC),
        ("NewItem", "model", material::MAX_SPEC),
        ("NewItem", "unit", material::MAX_UNIT),
        ("NewSite", "name", site::MAX_NAME),
        ("NewSite", "code", *site::CODE_LEN.end()),
        ("NewUser", "username", *user::USERNAME_LEN.end()),
        ("NewUser", "display_name", user::MAX_DISPLAY_NAME),
        ("UserPatch", "display_name", user::MAX_DISPLAY_NAME),
        ("NewUser", "password", password::MAX_LEN),
        ("UserPatch", "password", password::MAX_LEN),
        ("ChangePasswordRequest", "new_password", password::MAX_LEN),
        ("ChangePasswordRequest", "current_password", password::MAX_LEN),
        ("LoginRequest", "password", password::MAX_LEN),
    ];
    for (schema, name, max) in longest {
        assert_eq!(at(schema, name)["maxLength"], json!(max), "{schema}.{name}: longest");
    }
    for (schema, name, min) in [
        ("NewUser", "password", password::MIN_LEN),
        ("UserPatch", "password", password::MIN_LEN),
        ("ChangePasswordRequest", "new_password", password::MIN_LEN),
        ("NewUser", "username", *user::USERNAME_LEN.start()),
        ("NewSite", "code", *site::CODE_LEN.start()),
    ] {
        assert_eq!(at(schema, name)["minLength"], json!(min), "{schema}.{name}: shortest");
    }
    // texts that are trimmed and must not be left blank
    for (schema, name) in [
        ("TicketForm", "site_id"),
        ("TicketForm", "location"),
        ("TicketForm", "description"),
        ("TicketForm", "reporter_name"),
        ("ReasonBody", "reason"),
        ("AssignBody", "reason"),
        ("PhoneVerification", "note"),
        ("NoteBody", "note"),
        ("CompleteBody", "result"),
        ("NewItem", "name"),
        ("NewItem", "unit"),
        ("NewSite", "name"),
        ("NewUser", "display_name"),
        ("UserPatch", "display_name"),
    ] {
        let text = at(schema, name);
        assert_eq!(
            (&text["minLength"], &text["pattern"]),
            (&json!(1), &json!(NOT_BLANK)),
            "{schema}.{name}: not blank"
        );
    }

    let cents = 0.0..=material::MAX_CENTS as f64;
    let rating = *commands::RATING.start() as f64..=*commands::RATING.end() as f64;
    for (schema, name, range) in [
        ("QuoteBody", "amount_cents", 1.0..=material::MAX_CENTS as f64),
        ("NewMaterial", "unit_price_cents", cents.clone()),
        ("MaterialPatch", "unit_price_cents", cents.clone()),
        ("NewItem", "default_price_cents", cents.clone()),
        ("CompleteBody", "fee_collected_cents", cents),
        ("CompleteBody", "resident_rating", rating.clone()),
        ("CallbackBody", "satisfaction", rating),
        ("ArriveBody", "lat", commands::LAT),
        ("ArriveBody", "lng", commands::LNG),
    ] {
        let number = at(schema, name);
        let stated = (number["minimum"].as_f64(), number["maximum"].as_f64());
        assert_eq!(stated, (Some(*range.start()), Some(*range.end())), "{schema}.{name}: range");
    }

    for (schema, name, pattern) in [
        ("TicketForm", "reporter_phone", phone::PATTERN),
        ("NewUser", "phone", phone::PATTERN),
        ("UserPatch", "phone", phone::PATTERN),
        ("NewMaterial", "quantity", material::QUANTITY_PATTERN),
        ("MaterialPatch", "quantity", material::QUANTITY_PATTERN),
        ("NewUser", "username", user::USERNAME_PATTERN),
        ("NewSite", "code", site::CODE_PATTERN),
    ] {
        assert_eq!(at(schema, name)["pattern"], json!(pattern), "{schema}.{name}: pattern");
    }
    for (schema, name) in [("NewMaterial", "id"), ("NoteBody", "id")] {
        assert_eq!(at(schema, name)["format"], "uuid", "{schema}.{name}");
    }

    let enums = [
        (at("TicketForm", "area"), texts(Area::ALL, Area::as_str)),
        (at("TicketForm", "urgency"), texts(Urgency::ALL, Urgency::as_str)),
        (at("TicketForm", "channel"), texts(Channel::ALL, Channel::as_str)),
        (at("TicketForm", "category"), texts(&Category::ALL, Category::as_str)),
        (at("NewUser", "trades")["items"].clone(), texts(&Category::ALL, Category::as_str)),
        (at("UserPatch", "trades")["items"].clone(), texts(&Category::ALL, Category::as_str)),
        (at("HoldBody", "reason"), texts(HoldReason::ALL, HoldReason::as_str)),
        (at("NewUser", "role"), texts(&Role::ALL, Role::as_str)),
        (at("UserPatch", "role"), texts(&Role::ALL, Role::as_str)),
    ];
    for (schema, values) in enums {
        assert_eq!(enum_of(&spec, &schema), values, "{schema}");
    }
    for schema in [at("NewMaterial", "supplied_by"), at("MaterialPatch", "supplied_by")] {
        let listed = enum_of(&spec, &schema);
        assert!(listed.len() == 2 && listed.iter().all(|v| SuppliedBy::parse(v).is_some()), "{listed:?}");
    }
    assert_eq!(at("AcceptQuoteBody", "via")["enum"], json!(commands::CONSENT_VIA));
    let zones: Vec<&str> = site::timezone_names().collect();
    assert_eq!(at("NewSite", "timezone")["enum"], json!(zones));

    // required: what an empty intake form is refused for
    let refused: Vec<String> =
        TicketForm::default().validate(chrono::Utc::now()).unwrap_err().into_iter().map(|e| e.field).collect();
    let required: Vec<String> =
        serde_json::from_value(spec["components"]["schemas"]["TicketForm"]["required"].clone()).unwrap();
    assert_eq!(required, refused);
    // required with another field: said where the field is
    for (schema, name, condition) in [
        ("TicketForm", "reporter_phone", "`area` is `in_home`"),
        ("InspectBody", "note", "`passed` is false"),
        ("HoldBody", "note", "`reason` is `other`"),
        ("AcceptQuoteBody", "note", "`via: phone`"),
        ("AcceptQuoteBody", "code", "`via: code`"),
        ("ArriveBody", "code", "in-home"),
        ("NewMaterial", "name", "`catalogue_item_id`"),
        ("NewMaterial", "unit", "`catalogue_item_id`"),
        ("NewMaterial", "unit_price_cents", "`catalogue_item_id`"),
        ("CallbackBody", "satisfaction", "`reached: true`"),
        ("NewUser", "site_ids", "`admin`"),
    ] {
        let said = at(schema, name)["description"].as_str().unwrap_or_default().to_owned();
        assert!(said.contains(condition), "{schema}.{name} says when it is required: {said:?}");
    }

    // the queries
    let parameter = |path: &str, name: &str| -> Value {
        let params = spec["paths"][path]["get"]["parameters"].as_array().unwrap();
        params.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{path}?{name}")).clone()
    };
    let limit = parameter("/api/v1/tickets", "limit");
    assert_eq!(
        (&limit["schema"]["minimum"], &limit["schema"]["maximum"], &limit["schema"]["default"]),
        (&json!(LIMIT.start()), &json!(LIMIT.end()), &json!(DEFAULT_LIMIT))
    );
    let status = parameter("/api/v1/tickets", "status");
    assert_eq!((&status["style"], &status["explode"]), (&json!("form"), &json!(false)), "statuses separated by commas");
    assert_eq!(enum_of(&spec, &status["schema"]["items"]), texts(Status::ALL, Status::as_str));
    assert_eq!(enum_of(&spec, &parameter("/api/v1/users", "role")["schema"]), texts(&Role::ALL, Role::as_str));

    // the header of every write
    let cancel = &spec["paths"]["/api/v1/tickets/{id}/cancel"]["post"]["parameters"];
    let key = cancel.as_array().unwrap().iter().find(|p| p["name"] == "Idempotency-Key").unwrap();
    assert_eq!(
        (&key["schema"]["minLength"], &key["schema"]["maxLength"], &key["schema"]["pattern"]),
        (&json!(idempotency::KEY_LEN.start()), &json!(idempotency::KEY_LEN.end()), &json!(idempotency::KEY_PATTERN))
    );
}

/// Every text a request carries refuses the NUL character (PostgreSQL can't store it), and the
/// spec says so: each string of a request body or a query parameter, and each member name of a
/// body's objects, has a pattern that leaves NUL out (and blanks too, where the text is
/// required), or a format or an enum.
#[test]
fn the_spec_states_that_no_text_of_a_request_holds_a_nul() {
    fn texts(spec: &Value, schema: &Value, at: String, seen: &mut Vec<String>, out: &mut Vec<(String, Value)>) {
        if let Some(name) = schema["$ref"].as_str() {
            let name = name.rsplit('/').next().unwrap().to_owned();
            if !seen.contains(&name) {
                seen.push(name.clone());
                texts(spec, &spec["components"]["schemas"][&name], name, seen, out);
            }
            return;
        }
        let is_text =
            schema["type"] == "string" || schema["type"].as_array().is_some_and(|t| t.contains(&json!("string")));
        if is_text {
            out.push((at.clone(), schema.clone()));
        }
        if schema["type"] == "object" {
            out.push((format!("{at} (member names)"), schema["propertyNames"].clone()));
        }
        for (name, property) in schema["properties"].as_object().into_iter().flatten() {
            texts(spec, property, format!("{at}.{name}"), seen, out);
        }
        texts_of(spec, &schema["items"], format!("{at}[]"), seen, out);
        for variant in schema["oneOf"].as_array().into_iter().flatten() {
            texts(spec, variant, at.clone(), seen, out);
        }
    }
    fn texts_of(spec: &Value, schema: &Value, at: String, seen: &mut Vec<String>, out: &mut Vec<(String, Value)>) {
        if schema.is_object() {
            texts(spec, schema, at, seen, out);
        }
    }
    let spec = committed_spec();
    let (mut seen, mut found) = (Vec::new(), Vec::new());
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for content in op["requestBody"]["content"].as_object().into_iter().flatten().map(|(_, c)| c) {
                texts_of(&spec, &content["schema"], format!("{method} {path}"), &mut seen, &mut found);
            }
            for p in op["parameters"].as_array().into_iter().flatten().filter(|p| p["in"] == "query") {
                texts_of(&spec, &p["schema"], format!("{method} {path}?{}", p["name"]), &mut seen, &mut found);
            }
        }
    }
    assert!(found.len() > 60, "only {} texts found", found.len());
    for (at, text) in found {
        if text.get("format").is_some() || text.get("enum").is_some() || text.get("contentEncoding").is_some() {
            continue;
        }
        let pattern = text["pattern"].as_str().unwrap_or_else(|| panic!("{at} states no pattern"));
        let pattern = regex::Regex::new(pattern).unwrap();
        assert!(!pattern.is_match("a\u{0}b") && !pattern.is_match("\u{0}"), "{at}: {pattern} takes a NUL");
    }
    assert_eq!(property(&spec, "DeclineBody", "note")["pattern"], repairdesk::routes::openapi::NO_NUL);
}

/// An operation states each of its parameters once. `POST /tickets` once stated its
/// `Idempotency-Key` twice, the second time without the key's rules, and the fuzzer drew keys
/// from that one.
#[test]
fn no_operation_states_a_parameter_twice() {
    let spec = committed_spec();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let mut seen = std::collections::HashSet::new();
            for p in &params {
                let name = p["name"].as_str().unwrap().to_lowercase();
                assert!(seen.insert((name, p["in"].to_string())), "{method} {path} states {} twice", p["name"]);
            }
        }
    }
}

/// The lengths the spec states for the intake form are where the server starts refusing, counted
/// in characters; a blank text is refused as the pattern says.
#[tokio::test]
async fn the_intake_forms_stated_lengths_are_where_the_server_starts_refusing() {
    use crate::tickets::{desk_with, ticket_body};
    let d = desk_with(&[]).await;
    let spec = committed_spec();
    for name in ["location", "description", "reporter_name"] {
        let max = property(&spec, "TicketForm", name)["maxLength"].as_u64().unwrap() as usize;
        let mut body = ticket_body(&d.site);
        body[name] = json!("漏".repeat(max));
        assert_eq!(d.app.post("/api/v1/tickets", &d.desk, &body).await.status(), 201, "{name} of {max}");
        for refused in ["漏".repeat(max + 1), " \t ".to_owned()] {
            body[name] = json!(refused);
            let problem =
                assert_problem(d.app.post("/api/v1/tickets", &d.desk, &body).await, 422, "validation_failed").await;
            assert_eq!(problem["errors"][0]["field"], name, "{problem}");
        }
    }
}

/// The sync envelopes state the limits the server checks.
#[test]
fn the_sync_requests_state_their_limits() {
    let spec: Value = serde_json::from_str(repairdesk::routes::openapi::spec_json()).unwrap();
    let schemas = &spec["components"]["schemas"];
    assert_eq!(schemas["PushRequest"]["properties"]["ops"]["maxItems"], repairdesk::sync::MAX_OPS);
    assert_eq!(schemas["PushRequest"]["properties"]["client_id"]["format"], "uuid");
    let limit = &schemas["PullRequest"]["properties"]["limit"];
    assert_eq!(limit["minimum"], *repairdesk::sync::PULL_LIMIT.start());
    assert_eq!(limit["maximum"], *repairdesk::sync::PULL_LIMIT.end());
    assert_eq!(schemas["PullRequest"]["properties"]["client_id"]["format"], "uuid");
}
