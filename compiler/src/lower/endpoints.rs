//! Lowering endpoints: how clients reach flows. Each kind (`http`, `grpc`) is checked and
//! written as the plan's `Endpoint` of that kind; the filter serves them in
//! `filter/src/engine/endpoint/`.

use std::collections::HashMap;

use semaphore_plan as plan;

use super::{parse_path, services, Lowering};
use crate::config::{EndpointDef, Spanned};
use crate::diagnostics::Span;

impl Lowering<'_> {
    pub(super) fn endpoints(
        &mut self,
        flow_index: &HashMap<String, usize>,
        flows: &[plan::Flow],
    ) -> Vec<plan::Endpoint> {
        let mut out = Vec::new();
        let mut routes: HashMap<(String, String), Span> = HashMap::new();
        for endpoint in &self.config.endpoints {
            let Some(&flow) = flow_index.get(&endpoint.flow.value) else {
                if let Some(service) = self.left_out.get(&endpoint.flow.value) {
                    self.reporter
                        .warning(
                            &endpoint.flow.span,
                            format!(
                                "endpoint skipped: flow `{}` calls `{service}`, which cannot be served",
                                endpoint.flow.value
                            ),
                        )
                        .label("not served");
                } else if !self.config.flows.iter().any(|f| f.name.value == endpoint.flow.value) {
                    let names: Vec<&str> = self.config.flows.iter().map(|f| f.name.value.as_str()).collect();
                    self.reporter
                        .error(
                            &endpoint.flow.span,
                            format!("endpoint exposes unknown flow `{}`", endpoint.flow.value),
                        )
                        .label("no flow or proxy has this name")
                        .suggest(&endpoint.flow.value, names, None);
                }
                continue;
            };
            let lowered = match endpoint.kind.value.as_str() {
                "http" => self.endpoint(endpoint, flow, flows, &mut routes),
                "grpc" => self.grpc_endpoint(endpoint, flow, flows, &mut routes),
                // Fields of the one GraphQL schema, lowered together (`graphql.rs`).
                "graphql" => continue,
                other => {
                    self.reporter
                        .warning(
                            &endpoint.kind.span,
                            format!("`{other}` endpoints cannot be served inside Envoy"),
                        )
                        .label("endpoint skipped")
                        .suggest(
                            other,
                            ["http", "grpc", "graphql"],
                            Some("the endpoint kinds are \"http\", \"grpc\" and \"graphql\"".into()),
                        );
                    continue;
                }
            };
            out.extend(lowered);
        }
        out
    }

    /// `endpoint "<flow>" "grpc" { package service method }`: the unary method
    /// `/<package>.<service>/<method>`, its messages the flow's input and output in protobuf.
    fn grpc_endpoint(
        &mut self,
        endpoint: &EndpointDef,
        flow: usize,
        flows: &[plan::Flow],
        routes: &mut HashMap<(String, String), Span>,
    ) -> Option<plan::Endpoint> {
        let mut named = |attribute: &Option<Spanned<String>>, what: &str, example: &str| {
            let Some(name) = attribute else {
                self.reporter
                    .error(&endpoint.span, format!("grpc endpoint without `{what}`"))
                    .label(format!("no {what}"))
                    .note(format!("e.g. `{what} = \"{example}\"`"));
                return None;
            };
            let valid = |part: &str| {
                part.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            };
            let parts_valid =
                if what == "package" { name.value.split('.').all(valid) } else { valid(&name.value) };
            if !parts_valid {
                self.reporter
                    .error(&name.span, format!("`{}` is not a protobuf {what} name", name.value))
                    .label("letters, digits and `_`, not starting with a digit");
                return None;
            }
            Some(name.value.clone())
        };
        let service = named(&endpoint.service, "service", "Greeter")?;
        let method = named(&endpoint.method, "method", "SayHello")?;
        // Semaphore's gRPC listener named the service `<package>.<service>`.
        let service = match &endpoint.package {
            Some(package) if !package.value.is_empty() => {
                format!("{}.{service}", named(&endpoint.package, "package", "helloworld")?)
            }
            _ => service,
        };
        if flows.get(flow).is_some_and(|f| f.forward.is_some()) {
            self.reporter
                .warning(
                    &endpoint.kind.span,
                    "a proxy cannot be served over gRPC: it forwards an HTTP request",
                )
                .label("endpoint skipped");
            return None;
        }
        let route = format!("/{service}/{method}");
        let path = parse_path(&route);
        let span = endpoint.method.as_ref().map(|m| m.span.clone()).unwrap_or_else(|| endpoint.span.clone());
        if let Some(previous) = routes.insert(("POST".into(), route_shape(&path)), span.clone()) {
            self.reporter
                .error(&span, format!("two endpoints serve the gRPC method {route}"))
                .label("this method is already taken")
                .secondary(&previous, "by this endpoint");
            return None;
        }
        Some(grpc_method(route, flow as u32, plan::EndpointKind::Grpc))
    }

    fn endpoint(
        &mut self,
        endpoint: &EndpointDef,
        flow: usize,
        flows: &[plan::Flow],
        routes: &mut HashMap<(String, String), Span>,
    ) -> Option<plan::Endpoint> {
        let Some(route) = &endpoint.route else {
            self.reporter
                .error(&endpoint.span, "http endpoint without `endpoint = \"/path\"`")
                .label("no route")
                .note("e.g. `endpoint = \"/users/:id\"`");
            return None;
        };
        if !route.value.starts_with('/') {
            self.reporter.error(&route.span, "a route starts with `/`").label("e.g. \"/user/:id\"");
            return None;
        }
        let method = self.endpoint_method(endpoint, route)?;
        let path = parse_path(&route.value);
        let int64_as_string = services::int64_as_string(&endpoint.int64_as_string, self.reporter)?;
        let request_codec = self.endpoint_codec(endpoint, &endpoint.request_codec)?;
        let response_codec = self.endpoint_codec(endpoint, &endpoint.response_codec)?;
        if let Some(previous) = routes.insert((method.clone(), route_shape(&path)), route.span.clone()) {
            self.reporter
                .error(&route.span, format!("two endpoints serve {method} {}", route.value))
                .label("this route is already taken")
                .secondary(&previous, "by this endpoint");
            return None;
        }
        let plan_flow = flows.get(flow);
        let proxy = plan_flow.is_some_and(|f| f.forward.is_some());
        // A proxy forwards the path as it is; it binds no parameters.
        if !proxy {
            self.check_route_params(route, &path, plan_flow)?;
        }
        let status = match &endpoint.status {
            None => 200,
            Some(status) => self.status(status)?,
        };
        Some(plan::Endpoint {
            method,
            path,
            flow: flow as u32,
            status,
            request_codec: request_codec as i32,
            response_codec: response_codec as i32,
            route: route.value.clone(),
            int64_as_string,
            kind: plan::EndpointKind::Http as i32,
        })
    }

    /// The upper-cased HTTP method of an endpoint, `GET` unless it says otherwise.
    fn endpoint_method(&mut self, endpoint: &EndpointDef, route: &Spanned<String>) -> Option<String> {
        let method =
            endpoint.method.as_ref().map(|m| m.value.to_ascii_uppercase()).unwrap_or_else(|| "GET".into());
        if !matches!(method.as_str(), "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") {
            let span = endpoint.method.as_ref().map(|m| m.span.clone()).unwrap_or_else(|| route.span.clone());
            self.reporter.error(&span, format!("unknown HTTP method `{method}`")).label("not an HTTP method");
            return None;
        }
        Some(method)
    }

    /// The codec of one direction of an endpoint: its own, else the endpoint's `codec`, else JSON.
    fn endpoint_codec(
        &mut self,
        endpoint: &EndpointDef,
        codec: &Option<Spanned<String>>,
    ) -> Option<plan::Codec> {
        let Some(value) = codec.as_ref().or(endpoint.codec.as_ref()) else {
            return Some(plan::Codec::Json);
        };
        let parsed = plan::Codec::from_name(&value.value);
        if parsed.is_none() {
            self.reporter
                .warning(&value.span, format!("codec `{}` cannot be served", value.value))
                .label("endpoint skipped")
                .suggest(&value.value, services::codec_names(), Some(services::codecs_hint()));
        }
        parsed
    }

    /// Every `:name` of a route is a field of the flow's input.
    fn check_route_params(
        &mut self,
        route: &Spanned<String>,
        path: &[plan::PathSegment],
        flow: Option<&plan::Flow>,
    ) -> Option<()> {
        let input = flow.and_then(|f| self.layouts.messages.get(f.input as usize));
        for segment in path {
            if let Some(plan::Segment::Param(name) | plan::Segment::Wildcard(name)) = &segment.segment {
                if !input.is_some_and(|m| m.fields.iter().any(|f| &f.name == name)) {
                    self.reporter
                        .error(
                            &route.span,
                            format!("route parameter `{name}` is not a field of the flow's input"),
                        )
                        .label("unknown parameter")
                        .note(format!(
                            "add `{name}` to the input message `{}`",
                            input.map(|m| m.name.as_str()).unwrap_or("(none)")
                        ));
                    return None;
                }
            }
        }
        Some(())
    }
}

/// The endpoint of a gRPC method, `POST <route>`, its messages in protobuf; `flow` is none
/// (`u32::MAX`) for one that runs no flow.
pub(super) fn grpc_method(route: String, flow: u32, kind: plan::EndpointKind) -> plan::Endpoint {
    plan::Endpoint {
        method: "POST".into(),
        path: parse_path(&route),
        flow,
        status: 200,
        request_codec: plan::Codec::Proto as i32,
        response_codec: plan::Codec::Proto as i32,
        route,
        int64_as_string: false,
        kind: kind as i32,
    }
}

/// A route as far as telling routes apart goes: `/user/:id` and `/user/:name` are the same.
fn route_shape(path: &[plan::PathSegment]) -> String {
    path.iter()
        .map(|s| match &s.segment {
            Some(plan::Segment::Literal(l)) => l.clone(),
            Some(plan::Segment::Param(_)) => ":".into(),
            Some(plan::Segment::Wildcard(_)) => "*".into(),
            None => String::new(),
        })
        .collect::<Vec<_>>()
        .join("/")
}
