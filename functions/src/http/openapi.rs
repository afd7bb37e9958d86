//! The OpenAPI 3 document, generated from the route table and the body field tables: the same
//! data the router and the validators use, so the document always matches what is served.

use serde_json::{Map, Value, json};

use super::body::{Field, Kind};
use super::customers::DEFAULT_FIELDS;
use super::{Access, MediaType, ROUTES, Response};

fn field_schema(field: &Field) -> Value {
    let mut schema = match field.kind {
        Kind::String => json!({"type": "string"}),
        Kind::Email => json!({"type": "string", "format": "email"}),
        Kind::Boolean => json!({"type": "boolean"}),
        Kind::Record => json!({"type": "object", "additionalProperties": true}),
        Kind::StringList => json!({"type": "array", "items": {"type": "string"}}),
        Kind::List => json!({"type": "array", "items": {"type": "object"}}),
        Kind::Number => json!({"type": "number"}),
    };
    if field.nullable {
        schema["nullable"] = json!(true);
    }
    schema
}

fn body_schema(fields: &[Field]) -> Value {
    let properties: Map<String, Value> = fields
        .iter()
        .map(|f| (f.name.to_owned(), field_schema(f)))
        .collect();
    let required: Vec<&str> = fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    let mut schema =
        json!({"type": "object", "additionalProperties": false, "properties": properties});
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

fn customer_schema() -> Value {
    let properties: Map<String, Value> = DEFAULT_FIELDS
        .iter()
        .map(|name| {
            let schema = match *name {
                "id" => json!({"type": "string", "example": "cus_01JB8Z8ZQ5X0Q1G9W9V8T7S6R5"}),
                "has_account" => json!({"type": "boolean"}),
                "metadata" => {
                    json!({"type": "object", "nullable": true, "additionalProperties": true})
                }
                "created_at" | "updated_at" => json!({"type": "string", "format": "date-time"}),
                "deleted_at" => json!({"type": "string", "format": "date-time", "nullable": true}),
                _ => json!({"type": "string", "nullable": true}),
            };
            ((*name).to_owned(), schema)
        })
        .collect();
    json!({"type": "object", "properties": properties})
}

fn response_schema(kind: Response) -> Value {
    match kind {
        Response::Status => json!({"type": "object", "properties": {"status": {"type": "string"}}}),
        Response::Document => json!({"type": "object"}),
        Response::Token => {
            json!({"type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}})
        }
        Response::SignIn => json!({"type": "object", "properties": {
            "token": {"type": "string"}, "location": {"type": "string", "format": "uri"},
            "verification_required": {"type": "boolean"}}}),
        Response::Session => json!({"type": "object", "properties": {"user": {"type": "object"}}}),
        Response::Success => {
            json!({"type": "object", "properties": {"success": {"type": "boolean"}}})
        }
        Response::Created => json!({"type": "string", "description": "201, empty body"}),
        Response::Providers => {
            json!({"type": "object", "properties": {"providers": {"type": "array", "items": {"type": "object"}}}})
        }
        Response::ApiKey => {
            json!({"type": "object", "properties": {"api_key": {"type": "object"}}})
        }
        Response::ApiKeyList => json!({"type": "object", "properties": {
            "api_keys": {"type": "array", "items": {"type": "object"}},
            "count": {"type": "integer"}, "offset": {"type": "integer"}, "limit": {"type": "integer"}}}),
        Response::ApiKeyDeleted => deleted("api_key", false),
        Response::StoreAddressDeleted => deleted("address", true),
        Response::Import => {
            json!({"type": "object", "properties": {"import": {"type": "object", "properties": {
            "id": {"type": "string"}, "status": {"type": "string", "enum": ["pending", "running", "succeeded", "partially_failed", "failed"]},
            "processed": {"type": "integer"}, "created": {"type": "integer"}, "updated": {"type": "integer"},
            "unchanged": {"type": "integer"}, "failed": {"type": "integer"}, "error_report_url": {"type": "string", "nullable": true},
            "upload_url": {"type": "string", "nullable": true}}}}})
        }
        Response::ImportList => {
            json!({"type": "object", "properties": {"imports": {"type": "array", "items": {"type": "object"}}}})
        }
        Response::Export => {
            json!({"type": "object", "properties": {"export": {"type": "object", "properties": {
            "id": {"type": "string"}, "status": {"type": "string"}, "row_count": {"type": "integer"},
            "download_url": {"type": "string", "nullable": true}}}}})
        }
        Response::ExportList => {
            json!({"type": "object", "properties": {"exports": {"type": "array", "items": {"type": "object"}}}})
        }
        Response::File => json!({"type": "string", "format": "binary"}),
        Response::Customer => {
            json!({"type": "object", "properties": {"customer": {"$ref": "#/components/schemas/Customer"}}})
        }
        Response::CustomerList => json!({"type": "object", "properties": {
            "customers": {"type": "array", "items": {"$ref": "#/components/schemas/Customer"}},
            "count": {"type": "integer"}, "offset": {"type": "integer"}, "limit": {"type": "integer"}}}),
        Response::CustomerDeleted => deleted("customer", false),
        Response::AddressList => json!({"type": "object", "properties": {
            "addresses": {"type": "array", "items": {"type": "object"}},
            "count": {"type": "integer"}, "offset": {"type": "integer"}, "limit": {"type": "integer"}}}),
        Response::Address => {
            json!({"type": "object", "properties": {"address": {"type": "object"}}})
        }
        Response::AddressDeleted => deleted("customer_address", true),
        Response::Group => {
            json!({"type": "object", "properties": {"customer_group": {"type": "object"}}})
        }
        Response::GroupList => json!({"type": "object", "properties": {
            "customer_groups": {"type": "array", "items": {"type": "object"}},
            "count": {"type": "integer"}, "offset": {"type": "integer"}, "limit": {"type": "integer"}}}),
        Response::GroupDeleted => deleted("customer_group", false),
        Response::One(key) => json!({"type": "object", "properties": {key: {"type": "object"}}}),
        Response::Many(key) => json!({"type": "object", "properties": {
            key: {"type": "array", "items": {"type": "object"}},
            "count": {"type": "integer"}, "offset": {"type": "integer"}, "limit": {"type": "integer"}}}),
        Response::Deleted(object) => deleted(object, false),
    }
}

fn deleted(object: &str, with_parent: bool) -> Value {
    let mut schema = json!({"type": "object", "properties": {
        "id": {"type": "string"}, "object": {"type": "string", "enum": [object]}, "deleted": {"type": "boolean"}}});
    if with_parent {
        schema["properties"]["parent"] = json!({"$ref": "#/components/schemas/Customer"});
    }
    schema
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for spec in ROUTES {
        let mut parameters: Vec<Value> = spec
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        parameters.extend(spec.query.iter().map(|name| {
            json!({"name": name, "in": "query", "required": false, "style": "deepObject", "schema": {"type": "string"}})
        }));
        let mut responses = Map::new();
        responses.insert(
            "200".into(),
            json!({"description": "Success", "content": {"application/json": {"schema": response_schema(spec.response)}}}),
        );
        if spec.body.is_some() || !spec.query.is_empty() {
            responses.insert("400".into(), error_response("Invalid input"));
        }
        let mut operation = json!({
            "operationId": format!("{:?}", spec.route),
            "summary": spec.summary,
            "parameters": parameters,
            "responses": responses,
        });
        match spec.access {
            Access::Public => {}
            Access::Staff => {
                operation["security"] = json!([{"bearer": []}, {"session": []}, {"secretKey": []}]);
                operation["responses"]["401"] = error_response("Not signed in as staff");
                operation["responses"]["404"] = error_response("Not found");
            }
            Access::Identity => {
                operation["security"] = json!([{"bearer": []}, {"session": []}]);
                operation["responses"]["401"] = error_response("Not signed in");
            }
            Access::StoreSignup | Access::Shopper => {
                operation["security"] = json!([
                    {"publishableKey": [], "bearer": []},
                    {"publishableKey": [], "session": []}
                ]);
                operation["responses"]["400"] =
                    error_response("Invalid input, or no valid publishable key");
                operation["responses"]["401"] = error_response("Not signed in as a customer");
                operation["responses"]["404"] = error_response("Not found (or not the caller's)");
            }
        }
        if let Some(fields) = spec.body {
            operation["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": body_schema(fields)}}});
        } else if spec.body_media_types().contains(&MediaType::Csv) {
            let content: Map<String, Value> = spec
                .body_media_types()
                .iter()
                .map(|media| {
                    let schema = match media {
                        MediaType::Csv => json!({"type": "string"}),
                        MediaType::Json => json!({"type": "object", "additionalProperties": false}),
                    };
                    (media.name().to_owned(), json!({ "schema": schema }))
                })
                .collect();
            operation["requestBody"] = json!({"required": false, "content": content});
        }
        if spec.method != axum::http::Method::GET {
            operation["responses"]["415"] =
                error_response("The body is not of a declared media type");
        }
        let item = paths
            .entry(spec.path.to_owned())
            .or_insert_with(|| json!({}));
        item[spec.method.as_str().to_lowercase()] = operation;
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Customer module API (Medusa-compatible)", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "session": {"type": "apiKey", "in": "cookie", "name": "connect.sid"},
                "secretKey": {"type": "http", "scheme": "basic", "description": "A secret API key as the user name"},
                "publishableKey": {"type": "apiKey", "in": "header", "name": "x-publishable-api-key"},
            },
            "schemas": {
                "Customer": customer_schema(),
                "Error": {"type": "object", "required": ["message"], "properties": {
                    "code": {"type": "string"}, "type": {"type": "string"}, "message": {"type": "string"}}},
            },
        },
    })
}
