//! The OpenAPI document, generated from the handlers' annotations. `openapi/openapi.json` is this
//! document committed; a test fails when the two differ.

use std::collections::HashSet;

use utoipa::openapi::path::{Operation, Parameter, ParameterIn};
use utoipa::openapi::schema::{ArrayItems, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::Required;
use utoipa::openapi::{Content, Ref, RefOr, Response};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

use crate::idempotency::{KEY_LEN, KEY_PATTERN};
use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "repairdesk", description = "Repair desk and field technicians: tickets, the grab pool, on-site work, offline sync."),
    components(schemas(crate::error::Problem, crate::error::FieldError)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// Errors are `application/problem+json`, and some come from the extractors every handler shares
/// rather than from the handler: this states both, so the annotations need not repeat them.
struct ProblemResponses;

const PROBLEM_JSON: &str = "application/problem+json";

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                add_shared_errors(operation);
                for response in operation.responses.responses.values_mut() {
                    if let RefOr::T(response) = response {
                        problem_content_type(response);
                    }
                }
            }
        }
    }
}

/// The errors of the extractors: `Caller` (401), `JsonBody` (400, 413, 415, 422), `routes::Path`
/// (404) and `routes::Query` (422).
fn add_shared_errors(operation: &mut Operation) {
    let params = operation.parameters.as_deref().unwrap_or_default();
    let in_path = params.iter().any(|p| matches!(p.parameter_in, ParameterIn::Path));
    let in_query = params.iter().any(|p| matches!(p.parameter_in, ParameterIn::Query));
    let mut shared: Vec<(&str, &str)> = Vec::new();
    if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
        shared.push(("401", "`missing_token` or `invalid_token`"));
    }
    if operation.request_body.is_some() {
        shared.push(("400", "`malformed_json`"));
        shared.push(("413", "`payload_too_large`"));
        shared.push(("415", "`unsupported_media_type`: the body must be JSON"));
        shared.push(("422", "`validation_failed` naming each bad field"));
    }
    if in_path {
        shared.push(("404", "`not_found`"));
    }
    if in_query {
        shared.push(("422", "`validation_failed`: a bad query parameter"));
    }
    let responses = &mut operation.responses.responses;
    for (status, description) in shared {
        responses.entry(status.to_owned()).or_insert_with(|| {
            let mut response = Response::new(description);
            response.content.insert(PROBLEM_JSON.to_owned(), Content::new(Some(Ref::from_schema_name("Problem"))));
            RefOr::T(response)
        });
    }
}

/// Every authenticated write but a login's takes an `Idempotency-Key` (the idempotency
/// middleware): this states the header and the answers it brings on each such operation.
struct IdempotencyKeys;

impl Modify for IdempotencyKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            if path.starts_with("/api/v1/auth/") {
                continue;
            }
            let writes = [&mut item.post, &mut item.patch, &mut item.put, &mut item.delete];
            for operation in writes.into_iter().flatten() {
                if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    accepts_idempotency_key(operation);
                }
            }
        }
    }
}

fn accepts_idempotency_key(operation: &mut Operation) {
    let schema = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(*KEY_LEN.start()))
        .max_length(Some(*KEY_LEN.end()))
        .pattern(Some(KEY_PATTERN));
    let header = Parameter::builder()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "1 to 200 visible ASCII characters. The same request sent again with the same key gets the \
             first answer again (`Idempotent-Replayed: true`) instead of running twice. Only an answer \
             that changed something is kept: after a refusal that changed nothing the key is free again, \
             for the corrected request. Keys are the caller's and live 24 hours.",
        ))
        .schema(Some(schema))
        .build();
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    // stated once, whatever a handler's annotation said
    parameters
        .retain(|p| !(p.name.eq_ignore_ascii_case("Idempotency-Key") && matches!(p.parameter_in, ParameterIn::Header)));
    parameters.push(header);
    let answers = [
        (
            "409",
            "`idempotency_key_in_use`: a request with this Idempotency-Key is still running (or was cut off \
             less than 15 s ago); retry after `Retry-After`",
        ),
        (
            "422",
            "`idempotency_key_reused`: this Idempotency-Key was sent before with another request \
             (`validation_failed` names a malformed key)",
        ),
    ];
    for (status, description) in answers {
        match operation.responses.responses.get_mut(status) {
            Some(RefOr::T(response)) => response.description = format!("{}; {description}", response.description),
            _ => {
                let mut response = Response::new(description);
                response.content.insert(PROBLEM_JSON.to_owned(), Content::new(Some(Ref::from_schema_name("Problem"))));
                operation.responses.responses.insert(status.to_owned(), RefOr::T(response));
            }
        }
    }
}

/// The pattern of a text that may hold anything but the NUL character, which every text the
/// server takes refuses ([`crate::input::NUL_MESSAGE`]).
pub const NO_NUL: &str = r"^[^\u0000]*$";

/// States the NUL rule on what requests carry: a text of a request body or a query parameter
/// with no pattern, format or enum of its own gets [`NO_NUL`] (patterns of their own leave NUL
/// out already; a test checks each), and so do the member names of a body's objects, which the
/// server refuses a NUL in too, even in a member it does not read.
struct NoNul;

impl Modify for NoNul {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut named = Vec::new();
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.post, &mut item.patch, &mut item.put, &mut item.delete];
            for operation in operations.into_iter().flatten() {
                let queries = operation.parameters.iter_mut().flatten();
                for schema in
                    queries.filter(|p| matches!(p.parameter_in, ParameterIn::Query)).filter_map(|p| p.schema.as_mut())
                {
                    no_nul(schema, &mut named);
                }
                let bodies = operation.request_body.iter_mut().flat_map(|b| b.content.values_mut());
                for schema in bodies.filter_map(|c| c.schema.as_mut()) {
                    no_nul(schema, &mut named);
                }
            }
        }
        // and the schemas those name, and the schemas these name
        let Some(components) = openapi.components.as_mut() else { return };
        let mut done = HashSet::new();
        while let Some(name) = named.pop() {
            if done.insert(name.clone()) {
                if let Some(schema) = components.schemas.get_mut(&name) {
                    no_nul(schema, &mut named);
                }
            }
        }
    }
}

/// Gives the texts of `schema` [`NO_NUL`], and adds to `named` the component schemas it names.
fn no_nul(schema: &mut RefOr<Schema>, named: &mut Vec<String>) {
    match schema {
        RefOr::Ref(r) => named.extend(r.ref_location.rsplit('/').next().map(str::to_owned)),
        RefOr::T(Schema::Object(object)) => {
            let text = match &object.schema_type {
                SchemaType::Type(t) => *t == Type::String,
                SchemaType::Array(types) => types.contains(&Type::String),
                SchemaType::AnyValue => false,
            };
            let own_rule = object.pattern.is_some()
                || object.format.is_some()
                || object.enum_values.is_some()
                || !object.content_encoding.is_empty();
            if text && !own_rule {
                object.pattern = Some(NO_NUL.to_owned());
            }
            if matches!(object.schema_type, SchemaType::Type(Type::Object)) {
                let names = ObjectBuilder::new().schema_type(Type::String).pattern(Some(NO_NUL)).build();
                object.property_names = Some(Box::new(Schema::Object(names)));
            }
            object.properties.values_mut().for_each(|p| no_nul(p, named));
        }
        RefOr::T(Schema::Array(array)) => {
            if let ArrayItems::RefOrSchema(items) = &mut array.items {
                no_nul(items, named);
            }
        }
        RefOr::T(Schema::OneOf(one)) => one.items.iter_mut().for_each(|s| no_nul(s, named)),
        RefOr::T(Schema::AllOf(all)) => all.items.iter_mut().for_each(|s| no_nul(s, named)),
        RefOr::T(Schema::AnyOf(any)) => any.items.iter_mut().for_each(|s| no_nul(s, named)),
        RefOr::T(_) => {}
    }
}

/// `body = Problem` is served as `application/problem+json`, not the `application/json` utoipa
/// assumes.
fn problem_content_type(response: &mut Response) {
    let problem = RefOr::Ref(Ref::from_schema_name("Problem"));
    let is_problem = |c: &Content| c.schema.as_ref().is_some_and(|s| *s == problem);
    if response.content.get("application/json").is_some_and(is_problem) {
        if let Some(content) = response.content.shift_remove("application/json") {
            response.content.insert(PROBLEM_JSON.to_owned(), content);
        }
    }
}

/// The document: what [`routes::configure`] registers, with what every operation shares.
/// Built once, on first use; the served document and the router's 405 answers both read it.
pub fn spec() -> &'static utoipa::openapi::OpenApi {
    static SPEC: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    SPEC.get_or_init(build)
}

fn build() -> utoipa::openapi::OpenApi {
    let (_, mut api) = actix_web::App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(routes::configure)
        .split_for_parts();
    // these look at every operation, so they run once the routes are in
    ProblemResponses.modify(&mut api);
    IdempotencyKeys.modify(&mut api);
    NoNul.modify(&mut api);
    api
}

/// The document as committed: pretty JSON with a final newline.
pub fn spec_json() -> &'static str {
    static JSON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    JSON.get_or_init(|| {
        let mut json = spec().to_pretty_json().expect("the OpenAPI document serialises");
        json.push('\n');
        json
    })
}

/// The methods the spec documents for a request path (empty: no such route). The router answers
/// 405 with these in `Allow` when a path is served but not with the method asked.
pub fn methods_for(path: &str) -> Vec<&'static str> {
    static ROUTES: std::sync::OnceLock<Vec<(actix_web::dev::ResourceDef, Vec<&'static str>)>> =
        std::sync::OnceLock::new();
    let routes = ROUTES.get_or_init(|| {
        let mut routes: Vec<_> = spec()
            .paths
            .paths
            .iter()
            .map(|(template, item)| {
                let methods = [
                    ("GET", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                ];
                let methods = methods.into_iter().filter(|(_, on)| *on).map(|(m, _)| m).collect();
                (actix_web::dev::ResourceDef::new(template.as_str()), methods)
            })
            .collect();
        routes.push((actix_web::dev::ResourceDef::new("/openapi.json"), vec!["GET"]));
        routes.push((actix_web::dev::ResourceDef::new("/api/v1/openapi.json"), vec!["GET"]));
        routes
    });
    routes.iter().filter(|(def, _)| def.is_match(path)).flat_map(|(_, m)| m.iter().copied()).collect()
}
