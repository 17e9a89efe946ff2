//! The GraphQL endpoint over HTTP, as the GraphQL-over-HTTP specification has it: `POST` with
//! `{query, operationName, variables}` in JSON (or the document itself as
//! `application/graphql`), `GET` with them in the query string. The operation itself is
//! `engine/graphql/`'s; a flow a field runs answers here in JSON, as an HTTP endpoint's would.

use crate::engine::value::{json, Map, Value};
use percent_encoding::percent_decode_str;

use crate::engine::codec;
use crate::engine::graphql::GraphqlError;
use crate::engine::host::Reply;

/// What a GraphQL request asks.
pub struct GraphqlRequest {
    pub query: String,
    pub operation_name: Option<String>,
    pub variables: Map,
}

/// The request's parameters, or the HTTP status and message of a request that is not one.
// Apart from its one caller: see "Small functions" in the crate's documentation.
#[inline(never)]
pub fn read_request(
    method: &str,
    query_string: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<GraphqlRequest, (u16, String)> {
    if method.eq_ignore_ascii_case("GET") {
        let mut fields = Map::new();
        for pair in query_string.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            fields.insert(form_decode(name)?, Value::String(form_decode(value)?));
        }
        if let Some(Value::String(variables)) = fields.get("variables") {
            let parsed = if variables.is_empty() {
                Value::Null
            } else {
                // From bytes, as bodies are read: each way of reading brings its own parser.
                serde_json::from_slice(variables.as_bytes())
                    .map_err(|e| (400, format!("`variables` is not JSON: {e}")))?
            };
            fields.insert("variables".into(), parsed);
        }
        return parameters(Value::Object(fields));
    }
    let content_type = headers
        .iter()
        .find(|(n, _)| n == "content-type")
        .map(|(_, v)| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default();
    match content_type.as_str() {
        "application/graphql" => match std::str::from_utf8(body) {
            Ok(query) => Ok(GraphqlRequest { query: query.to_string(), operation_name: None, variables: Map::new() }),
            Err(_) => Err((400, "the GraphQL document is not valid UTF-8".into())),
        },
        // Semaphore's listener read any body as JSON.
        "" | "application/json" | "application/graphql+json" => {
            let value: Value =
                serde_json::from_slice(body).map_err(|e| (400, format!("the request body is not JSON: {e}")))?;
            parameters(value)
        }
        other => Err((
            415,
            format!("a GraphQL request is JSON (`application/json`) or a document (`application/graphql`), not `{other}`"),
        )),
    }
}

fn form_decode(text: &str) -> Result<String, (u16, String)> {
    let spaced = text.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| (400, "the query string is not valid UTF-8".into()))
}

fn parameters(value: Value) -> Result<GraphqlRequest, (u16, String)> {
    let Value::Object(mut fields) = value else {
        return Err((400, "a GraphQL request is a JSON object with a `query`".into()));
    };
    let query = match fields.remove("query") {
        Some(Value::String(query)) => query,
        Some(_) => return Err((400, "`query` must be a string".into())),
        None => return Err((400, "the request has no `query`".into())),
    };
    let operation_name = match fields.remove("operationName") {
        Some(Value::String(name)) if !name.is_empty() => Some(name),
        None | Some(Value::Null) | Some(Value::String(_)) => None,
        Some(_) => return Err((400, "`operationName` must be a string".into())),
    };
    let variables = match fields.remove("variables") {
        Some(Value::Object(variables)) => variables,
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err((400, "`variables` must be an object".into())),
    };
    Ok(GraphqlRequest { query, operation_name, variables })
}

/// The media type the answer takes: the specification's own when the client accepts it, else
/// `application/json`, which legacy clients expect (and which answers request errors with 200).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Json,
    GraphqlResponse,
}

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

impl Style {
    pub fn of(headers: &[(String, String)]) -> Style {
        let accept = headers.iter().find(|(n, _)| n == "accept").map(|(_, v)| v.as_str()).unwrap_or("");
        if accept.split(',').any(|media| media.split(';').next().unwrap_or("").trim() == GRAPHQL_RESPONSE) {
            Style::GraphqlResponse
        } else {
            Style::Json
        }
    }

    pub fn reply(self, status: u16, body: &Value) -> Reply {
        self.reply_text(status, codec::json_text(body))
    }

    pub fn reply_text(self, status: u16, body: String) -> Reply {
        let content_type = match self {
            Style::Json => "application/json",
            Style::GraphqlResponse => GRAPHQL_RESPONSE,
        };
        Reply {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into_bytes(),
            trailers: Vec::new(),
        }
    }

    /// A request that runs no flow: its `document` does not parse or check, or it is no
    /// GraphQL request at all. As `application/json` a document's errors are 200, as the
    /// specification says; as its own media type they are 400. A request that is not one keeps
    /// its status either way.
    pub fn request_error(self, status: u16, error: &GraphqlError, document: bool) -> Reply {
        let body = json!({ "errors": [error.to_json()] });
        let status = if document && self == Style::Json { 200 } else { status };
        self.reply(status, &body)
    }
}
