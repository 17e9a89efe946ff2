//! Checks every flow against the schemas and lowers it into the plan: names become indices,
//! templates become typed, resolved values, routes and upstream paths become segment lists, and
//! error handling is resolved from global to flow to resource.

mod endpoints;
mod expr;
mod functions;
mod graphql;
mod reads;
mod reflection;
pub mod services;
pub mod types;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use semaphore_plan as plan;

use crate::config::{
    CallDef, Config, FieldDef, FieldValue, FlowDef, ForwardDef, Literal, OnErrorDef, Pair, ParamMap,
    ResourceDef, Spanned,
};
use crate::diagnostics::{Reporter, Span};
use crate::schema::{HttpAnnotation, Layouts, MethodInfo, Schemas};
pub use services::{parse_host, parse_path, Upstream};
use types::{describe_field, Ty};

pub const DEFAULT_TIMEOUT_MS: u32 = 10_000;
/// Attempts of a compensation after its first, unless its `options { retries }` says otherwise.
pub const DEFAULT_ROLLBACK_RETRIES: u32 = 5;
const RESERVED_NAMES: &[&str] = &["input", "error", "stack", "output"];

/// The plan, and the GraphQL schema's `__schema` document when a flow has a GraphQL endpoint.
pub fn lower(
    config: &Config,
    schemas: &Schemas,
    options: &crate::CompileOptions,
    reporter: &mut Reporter,
) -> (plan::Plan, Option<serde_json::Value>) {
    let mut lowering = Lowering {
        config,
        schemas,
        options,
        reporter,
        layouts: Layouts::default(),
        services: Vec::new(),
        service_index: HashMap::new(),
        failed_services: Default::default(),
        unservable_services: Default::default(),
        calls_unservable: false,
        left_out: HashMap::new(),
        value_types: HashMap::new(),
    };
    // The global error object is lowered in each flow's scope; its schema is reported once.
    let global_error = config.error.as_ref().filter(|error| lowering.message(&error.schema).is_some());
    let mut flow_index: HashMap<String, usize> = HashMap::new();
    let mut flows = Vec::new();
    let mut defined: HashMap<&str, &Span> = HashMap::new();
    for flow in &config.flows {
        if let Some(first) = defined.insert(&flow.name.value, &flow.name.span) {
            let first = first.clone();
            let what = if flow.proxy { "proxy" } else { "flow" };
            lowering
                .reporter
                .error(&flow.name.span, format!("{what} `{}` is defined twice", flow.name.value))
                .label("second definition")
                .secondary(&first, "first definition");
            continue;
        }
        if let Some(lowered) = lowering.flow(flow, global_error) {
            flow_index.insert(flow.name.value.clone(), flows.len());
            flows.push(lowered);
        }
    }
    let mut endpoints = lowering.endpoints(&flow_index, &flows);
    let reflection = reflection::reflection(&endpoints, &flows, &lowering.layouts.messages, schemas);
    if reflection.is_some() {
        endpoints.extend(reflection::REFLECTION_SERVICES.map(|service| {
            let route = format!("/{service}/ServerReflectionInfo");
            endpoints::grpc_method(route, u32::MAX, plan::EndpointKind::GrpcReflection)
        }));
    }
    let graphql = lowering.graphql(&flow_index, &flows);
    let (graphql, document) = match graphql {
        Some(lowered) => {
            endpoints.extend(lowered.endpoints);
            (Some(lowered.schema), Some(lowered.document))
        }
        None => (None, None),
    };
    let plan = plan::Plan {
        services: lowering.services,
        messages: lowering.layouts.messages,
        endpoints,
        flows,
        log_level: String::new(),
        reflection,
        graphql,
    };
    (plan, document)
}

pub(crate) struct Lowering<'a> {
    config: &'a Config,
    schemas: &'a Schemas,
    options: &'a crate::CompileOptions,
    reporter: &'a mut Reporter,
    layouts: Layouts,
    services: Vec<plan::Service>,
    service_index: HashMap<String, u32>,
    /// Services whose settings are wrong; reported once, where first used.
    failed_services: std::collections::HashSet<String>,
    /// Services the filter cannot speak to; reported once, as warnings.
    unservable_services: std::collections::HashSet<String>,
    /// The flow being lowered calls one of those.
    calls_unservable: bool,
    /// Flows left out of the plan, with the service that left them out.
    left_out: HashMap<String, String>,
    /// The type of each `resources` value node of the flow being lowered, once lowered.
    value_types: HashMap<u32, Ty>,
}

/// What a template is lowered for, which decides what it may reference.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    /// Request, header, params, condition, output: references are dependencies.
    Flow,
    /// The compensating call of node n: references must have completed before n did.
    Rollback(u32),
    /// `error` and `on_error`: `error` is in scope, references are read if present.
    Error,
}

struct Ctx<'s> {
    scope: &'s Scope,
    mode: Mode,
    /// Nodes referenced, with the first place each was referenced at.
    refs: BTreeMap<u32, Span>,
    /// Inside `repeated`: the element being built from.
    item: Option<Item>,
    /// A rollback read its own node's response or headers.
    reads_own_response: bool,
}

impl<'s> Ctx<'s> {
    fn new(scope: &'s Scope, mode: Mode) -> Self {
        Ctx { scope, mode, refs: BTreeMap::new(), item: None, reads_own_response: false }
    }
}

#[derive(Clone)]
struct Item {
    source: plan::Reference,
    element: MessageDescriptor,
}

/// Per-flow names visible to templates.
struct Scope {
    proxy: bool,
    input: Option<MessageDescriptor>,
    /// The input's message is unknown; that is already reported.
    input_failed: bool,
    input_headers: Vec<String>,
    nodes: HashMap<String, NodeInfo>,
}

struct NodeInfo {
    index: u32,
    kind: NodeKind,
    /// `on_error { schema = "..." }`: what `{{ node.error:path }}` reads.
    error_schema: Option<MessageDescriptor>,
}

enum NodeKind {
    Call(MethodInfo),
    /// `resources { name = "..." }`
    Value,
    /// `resource "name" {}` without a request.
    Empty,
    /// Its method did not resolve; that is already reported.
    Unresolved,
}

impl Lowering<'_> {
    fn message(&mut self, name: &Spanned<String>) -> Option<MessageDescriptor> {
        let found = self.schemas.message(&name.value);
        if found.is_none() && self.schemas.complete {
            let names: Vec<String> =
                self.schemas.pool.all_messages().map(|m| m.full_name().to_string()).collect();
            self.reporter
                .error(&name.span, format!("unknown message `{}`", name.value))
                .label("no proto defines this message")
                .suggest(&name.value, names.iter().map(String::as_str), None);
        }
        found
    }

    fn flow(&mut self, flow: &FlowDef, global_error: Option<&ParamMap>) -> Option<plan::Flow> {
        let errors_before = self.reporter.errors();
        self.value_types.clear();
        self.calls_unservable = false;
        let scope = self.scope(flow);
        let nodes = self.nodes(flow, &scope);
        let output = flow.output.as_ref().and_then(|output| self.output(output, &scope));
        let error = flow.error.as_ref().or(global_error).and_then(|e| self.error_object(e, &scope));
        let on_error = flow.on_error.as_ref().and_then(|e| self.on_error(e, &scope));
        let timeout_ms = match &flow.timeout {
            Some(timeout) => self.duration_ms(timeout)?,
            None => 0,
        };
        let forward = flow.forward.as_ref().and_then(|forward| self.forward(forward, &flow.rewrites, &scope));
        if self.reporter.errors() > errors_before {
            return None;
        }
        if self.calls_unservable {
            self.leave_out(flow);
            return None;
        }
        let input = match &scope.input {
            Some(message) => self.layouts.layout(message),
            None => self.empty_message(),
        };
        let mut lowered = plan::Flow {
            name: flow.name.value.clone(),
            input,
            input_headers: scope.input_headers,
            nodes,
            output,
            error,
            on_error,
            timeout_ms,
            forward,
        };
        reads::set_reads(&mut lowered, &self.layouts.messages);
        Some(lowered)
    }

    /// The names a flow's templates see: its input, and every resource, declared before any is
    /// lowered so that references may point at resources defined further down.
    fn scope(&mut self, flow: &FlowDef) -> Scope {
        let input_message = flow.input.as_ref().and_then(|i| i.message.as_ref());
        let input = match &flow.schema {
            // The method's request is the input; the input block only declares headers.
            Some(schema) => self.schema_method(schema).map(|method| method.input),
            None => input_message.and_then(|m| self.message(m)),
        };
        let input_message = input_message.or(flow.schema.as_ref());
        let input_headers = flow
            .input
            .as_ref()
            .map(|i| i.headers.iter().map(|h| h.value.to_ascii_lowercase()).collect())
            .unwrap_or_default();
        let input_failed = input_message.is_some() && input.is_none();
        let mut scope =
            Scope { proxy: flow.proxy, input, input_failed, input_headers, nodes: HashMap::new() };
        for (index, resource) in flow.resources.iter().enumerate() {
            self.declare(flow, index as u32, resource, &mut scope);
        }
        scope
    }

    /// A resource's name in the flow's scope, with what it is.
    fn declare(&mut self, flow: &FlowDef, index: u32, resource: &ResourceDef, scope: &mut Scope) {
        let name = &resource.name;
        if RESERVED_NAMES.contains(&name.value.as_str()) {
            self.reporter
                .error(&name.span, format!("`{}` is a reserved name", name.value))
                .label("choose another resource name")
                .note(format!("reserved: {}", RESERVED_NAMES.join(", ")));
            return;
        }
        if let Some(first) = scope.nodes.get(&name.value) {
            let first = flow.resources.get(first.index as usize).map(|r| r.name.span.clone());
            let report = self
                .reporter
                .error(
                    &name.span,
                    format!("resource `{}` is defined twice in `{}`", name.value, flow.name.value),
                )
                .label("second definition");
            if let Some(first) = first {
                report.secondary(&first, "first definition");
            }
            return;
        }
        let kind = match (&resource.request, &resource.value) {
            (Some(call), _) => self.method(call).map(NodeKind::Call).unwrap_or(NodeKind::Unresolved),
            (None, Some(_)) => NodeKind::Value,
            (None, None) => NodeKind::Empty,
        };
        let error_schema = resource
            .on_error
            .as_ref()
            .and_then(|e| e.schema.as_ref())
            .and_then(|schema| self.message(schema));
        scope.nodes.insert(name.value.clone(), NodeInfo { index, kind, error_schema });
    }

    /// Every resource's node, with the dependencies between them checked.
    fn nodes(&mut self, flow: &FlowDef, scope: &Scope) -> Vec<plan::Node> {
        let before: Vec<u32> =
            flow.resources.iter().enumerate().filter(|(_, r)| r.before).map(|(i, _)| i as u32).collect();
        let mut nodes = Vec::new();
        let mut edges: Vec<Vec<u32>> = Vec::new();
        let mut rollback_refs: Vec<BTreeMap<u32, Span>> = Vec::new();
        for (index, resource) in flow.resources.iter().enumerate() {
            let (node, deps, rollback) = self.node(index as u32, resource, scope, &before);
            edges.push(deps.keys().copied().collect());
            rollback_refs.push(rollback);
            nodes.push(node);
        }
        self.check_cycles(flow, &edges);
        self.check_rollbacks(flow, &edges, &rollback_refs);
        nodes
    }

    /// A proxy's `forward` block and its `rewrite` rules.
    fn forward(
        &mut self,
        forward: &ForwardDef,
        rewrites: &[(Spanned<String>, Spanned<String>)],
        scope: &Scope,
    ) -> Option<plan::Forward> {
        let service = self.service_by_name(&forward.service)?;
        let mut ctx = Ctx::new(scope, Mode::Flow);
        let headers = self.headers(&forward.headers, &mut ctx);
        let rewrites =
            rewrites.iter().filter_map(|(pattern, template)| self.rewrite(pattern, template)).collect();
        Some(plan::Forward { service, headers, rewrites })
    }

    /// A flow calling a service the filter cannot speak to is left out of the plan, and its
    /// endpoints say which service left it out.
    fn leave_out(&mut self, flow: &FlowDef) {
        let service = flow
            .resources
            .iter()
            .flat_map(|r| r.request.iter().chain(r.rollback.iter()))
            .map(|call| call.service.value.clone())
            .chain(flow.forward.iter().map(|f| f.service.value.clone()))
            .find(|name| self.unservable_services.contains(name))
            .unwrap_or_default();
        self.left_out.insert(flow.name.value.clone(), service);
    }

    /// A resource's node, the nodes it depends on, and what its rollback references.
    fn node(
        &mut self,
        index: u32,
        resource: &ResourceDef,
        scope: &Scope,
        before: &[u32],
    ) -> (plan::Node, BTreeMap<u32, Span>, BTreeMap<u32, Span>) {
        let mut ctx = Ctx::new(scope, Mode::Flow);
        self.declared_dependencies(resource, before, &mut ctx);
        let condition = self.conditions(resource, &mut ctx);
        let info = scope.nodes.get(&resource.name.value);
        let call = match (info.map(|i| &i.kind), &resource.request) {
            (Some(NodeKind::Call(method)), Some(call)) => self.call(call, method.clone(), &mut ctx),
            _ => None,
        };
        let mut values = Vec::new();
        if let Some(value) = &resource.value {
            if let Some((lowered, ty)) = self.value(value, &Ty::Dynamic, &mut ctx) {
                self.value_types.insert(index, ty);
                values.push(plan::NamedValue { name: String::new(), value: Some(lowered) });
            }
        }
        if ctx.refs.remove(&index).is_some() {
            self.reporter
                .error(&resource.name.span, format!("resource `{}` depends on itself", resource.name.value))
                .label("references its own result");
        }
        let deps = std::mem::take(&mut ctx.refs);
        let mut rollback_ctx = Ctx::new(scope, Mode::Rollback(index));
        let rollback = resource.rollback.as_ref().and_then(|call| self.rollback(call, &mut rollback_ctx));
        let mut error_ctx = Ctx::new(scope, Mode::Error);
        let error = resource.error.as_ref().and_then(|e| self.error_object_in(e, &mut error_ctx));
        let on_error = resource.on_error.as_ref().and_then(|e| self.on_error_in(e, &mut error_ctx));
        let expect_status = resource.expect_status.iter().filter_map(|status| self.status(status)).collect();
        let node = plan::Node {
            name: resource.name.value.clone(),
            depends_on: deps.keys().copied().collect(),
            call,
            condition,
            rollback,
            error,
            on_error,
            expect_status,
            before: resource.before,
            values,
            rollback_reads_response: rollback_ctx.reads_own_response,
        };
        (node, deps, rollback_ctx.refs)
    }

    /// `depends_on`, and the `before` nodes every other node waits for.
    fn declared_dependencies(&mut self, resource: &ResourceDef, before: &[u32], ctx: &mut Ctx) {
        let scope = ctx.scope;
        for dependency in &resource.depends_on {
            match scope.nodes.get(&dependency.value) {
                Some(info) => {
                    ctx.refs.entry(info.index).or_insert_with(|| dependency.span.clone());
                }
                None => self.unknown_resource(&dependency.value, &dependency.span, scope),
            }
        }
        if !resource.before {
            for b in before {
                ctx.refs.entry(*b).or_insert_with(|| resource.name.span.clone());
            }
        }
    }

    /// The conjunction of a resource's `if`s.
    fn conditions(&mut self, resource: &ResourceDef, ctx: &mut Ctx) -> Option<plan::Value> {
        let mut conditions = Vec::new();
        for condition in &resource.conditions {
            if let Some(value) = self.condition(condition, ctx) {
                conditions.push(value);
            }
        }
        conditions.into_iter().reduce(|left, right| plan::Value {
            kind: Some(plan::ValueKind::Binary(Box::new(plan::Binary {
                op: plan::BinaryOp::And as i32,
                left: Some(left),
                right: Some(right),
            }))),
        })
    }

    fn rollback(&mut self, call: &CallDef, ctx: &mut Ctx) -> Option<plan::Call> {
        let method = self.method(call)?;
        let mut lowered = self.call(call, method, ctx)?;
        // A compensation is worth more attempts than a call: money may hang on it.
        if !call.options.iter().any(|(key, _)| key.value == "retries") {
            lowered.retries = DEFAULT_ROLLBACK_RETRIES;
        }
        Some(lowered)
    }

    /// `schema = "pkg.Service.Method"`.
    fn schema_method(&mut self, schema: &Spanned<String>) -> Option<MethodInfo> {
        let Some((service, method)) = schema.value.rsplit_once('.') else {
            self.reporter
                .error(&schema.span, "a flow schema names a method: `pkg.Service.Method`")
                .label("not a method name");
            return None;
        };
        let call = CallDef {
            service: Spanned { value: service.to_string(), span: schema.span.clone() },
            method: Spanned { value: method.to_string(), span: schema.span.clone() },
            fields: Vec::new(),
            headers: Vec::new(),
            params: Vec::new(),
            options: Vec::new(),
        };
        self.method(&call)
    }

    fn status(&mut self, status: &Spanned<Literal>) -> Option<u32> {
        let parsed = match &status.value {
            Literal::Int(i) => u32::try_from(*i).ok(),
            Literal::String(s) => s.parse().ok(),
            _ => None,
        };
        let valid = parsed.filter(|s| (100..=599).contains(s));
        if valid.is_none() {
            self.reporter.error(&status.span, "expected an HTTP status code (100-599)").label("not a status");
        }
        valid
    }

    /// Flows without an `input` block take no input; they still get a layout to decode into.
    fn empty_message(&mut self) -> u32 {
        match self.schemas.message("google.protobuf.Empty") {
            Some(message) => self.layouts.layout(&message),
            None => {
                self.layouts
                    .messages
                    .push(plan::MessageLayout { name: "google.protobuf.Empty".into(), fields: vec![] });
                (self.layouts.messages.len() - 1) as u32
            }
        }
    }

    fn check_cycles(&mut self, flow: &FlowDef, edges: &[Vec<u32>]) {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        fn visit(
            node: usize,
            edges: &[Vec<u32>],
            marks: &mut [Mark],
            stack: &mut Vec<usize>,
        ) -> Option<Vec<usize>> {
            marks[node] = Mark::Active;
            stack.push(node);
            for next in edges.get(node).into_iter().flatten() {
                let next = *next as usize;
                match marks.get(next).copied() {
                    Some(Mark::Active) => {
                        let start = stack.iter().position(|n| *n == next).unwrap_or(0);
                        return Some(stack[start..].to_vec());
                    }
                    Some(Mark::New) => {
                        if let Some(cycle) = visit(next, edges, marks, stack) {
                            return Some(cycle);
                        }
                    }
                    _ => {}
                }
            }
            stack.pop();
            marks[node] = Mark::Done;
            None
        }
        let mut marks = vec![Mark::New; edges.len()];
        for start in 0..edges.len() {
            if marks[start] != Mark::New {
                continue;
            }
            if let Some(cycle) = visit(start, edges, &mut marks, &mut Vec::new()) {
                let names: Vec<&str> = cycle.iter().map(|i| flow.resources[*i].name.value.as_str()).collect();
                let path = names.iter().chain(names.first()).copied().collect::<Vec<_>>().join(" -> ");
                self.reporter
                    .error(
                        &flow.resources[cycle[0]].name.span,
                        format!("dependency cycle in `{}`: {path}", flow.name.value),
                    )
                    .label("this resource waits for itself through the cycle");
                return;
            }
        }
    }

    /// A rollback runs after its resource completed; it may read that resource, the input, the
    /// error, and the resources its resource (transitively) waited for, nothing else.
    fn check_rollbacks(&mut self, flow: &FlowDef, edges: &[Vec<u32>], rollback_refs: &[BTreeMap<u32, Span>]) {
        for (index, refs) in rollback_refs.iter().enumerate() {
            if refs.is_empty() {
                continue;
            }
            let mut ancestors = BTreeSet::new();
            let mut stack = vec![index as u32];
            while let Some(node) = stack.pop() {
                for dep in edges.get(node as usize).into_iter().flatten() {
                    if ancestors.insert(*dep) {
                        stack.push(*dep);
                    }
                }
            }
            for (referenced, span) in refs {
                if *referenced == index as u32 || ancestors.contains(referenced) {
                    continue;
                }
                let (Some(owner), Some(other)) =
                    (flow.resources.get(index), flow.resources.get(*referenced as usize))
                else {
                    continue;
                };
                self.reporter
                    .error(
                        span,
                        format!(
                            "the rollback of `{}` references `{}`, which may not have completed",
                            owner.name.value, other.name.value
                        ),
                    )
                    .label("may be absent when the rollback runs")
                    .note(format!(
                        "a rollback may reference the input, `error`, `{}` itself and the resources it depends on; add `depends_on = [\"{}\"]` to `{}`",
                        owner.name.value, other.name.value, owner.name.value
                    ));
            }
        }
    }

    pub(crate) fn method(&mut self, call: &CallDef) -> Option<MethodInfo> {
        let Some(service) = self.schemas.service_info(&call.service.value, self.config) else {
            if !self.schemas.complete {
                return None;
            }
            let names = self.schemas.service_names(self.config);
            self.reporter
                .error(&call.service.span, format!("unknown service `{}`", call.service.value))
                .label("no proto or `service` block defines this service")
                .suggest(&call.service.value, names.iter().map(String::as_str), None);
            return None;
        };
        if let Err(problem) = &service.methods {
            self.reporter.error(&problem.span, problem.message.clone()).label("unknown message");
            return None;
        }
        let methods = service.methods.as_ref().ok()?;
        let found = methods.iter().find(|m| m.name == call.method.value).cloned();
        if found.is_none() {
            let names: Vec<&str> = methods.iter().map(|m| m.name.as_str()).collect();
            let listed = format!("its methods: {}", names.join(", "));
            self.reporter
                .error(
                    &call.method.span,
                    format!("service `{}` has no method `{}`", call.service.value, call.method.value),
                )
                .label("unknown method")
                .suggest(&call.method.value, names.iter().copied(), Some(listed));
        }
        found
    }

    fn call(&mut self, call: &CallDef, method: MethodInfo, ctx: &mut Ctx) -> Option<plan::Call> {
        // A service that does not resolve is reported; its call is checked all the same.
        let service = self.service_by_name(&call.service);
        let request = self.message_template(&call.fields, &method.input, ctx);
        let headers = self.headers(&call.headers, ctx);
        let params: Vec<plan::NamedValue> = call
            .params
            .iter()
            .filter_map(|(name, value)| {
                let (value, _) = self.value(value, &Ty::String, ctx)?;
                Some(plan::NamedValue { name: name.value.clone(), value: Some(value) })
            })
            .collect();
        let (http_method, path) = self.call_route(call, &method, service)?;
        let options = self.call_options(call)?;
        Some(plan::Call {
            service: service?,
            method: method.name.clone(),
            http_method,
            path,
            request_message: self.layouts.layout(&method.input),
            response_message: self.layouts.layout(&method.output),
            request: Some(request),
            headers,
            params,
            timeout_ms: options.timeout_ms,
            retries: options.retries,
            retry_unsafe: options.retry_unsafe,
            // Set once the whole flow is lowered: see `reads`.
            response_fields: None,
            response_headers_unread: false,
            request_unread: false,
        })
    }

    /// The HTTP method and path a call is sent with: the method's HTTP annotation, else the
    /// gRPC path of the method.
    fn call_route(
        &mut self,
        call: &CallDef,
        method: &MethodInfo,
        service: Option<u32>,
    ) -> Option<(String, Vec<plan::PathSegment>)> {
        let transport =
            service.and_then(|s| self.services.get(s as usize)).map(|s| s.transport()).unwrap_or_default();
        match http_annotation(call, method) {
            Some(http) => {
                let segments = parse_path(&http.endpoint);
                self.check_path_params(call, method, &http.endpoint, &segments);
                let verb =
                    if http.method.is_empty() { "GET".to_string() } else { http.method.to_ascii_uppercase() };
                Some((verb, segments))
            }
            None if transport == plan::Transport::Grpc => Some(services::grpc_route(method)),
            // Its service is unresolved (and reported): its transport is unknown.
            None if service.is_none() => None,
            None => {
                self.reporter
                    .error(&call.method.span, format!("`{}` has no HTTP path", method.full_name))
                    .label("an HTTP service needs the method's path")
                    .note("add `option (semaphore.api.http) = { endpoint: \"/path/:id\" method: \"GET\" };` to the rpc");
                None
            }
        }
    }

    /// Every `:name` of a call's path has a value, from `params` or the request.
    fn check_path_params(
        &mut self,
        call: &CallDef,
        method: &MethodInfo,
        endpoint: &str,
        segments: &[plan::PathSegment],
    ) {
        for segment in segments {
            if let Some(plan::Segment::Param(name) | plan::Segment::Wildcard(name)) = &segment.segment {
                let in_params = call.params.iter().any(|(p, _)| &p.value == name);
                let in_request = method.input.get_field_by_name(name).is_some();
                if !in_params && !in_request {
                    self.reporter
                        .error(
                            &call.method.span,
                            format!(
                                "the path `{endpoint}` of `{}` needs a value for `:{name}`",
                                method.full_name
                            ),
                        )
                        .label("no value for a path parameter")
                        .note(format!(
                            "add `params {{ {name} = \"...\" }}` to the request, or a `{name}` field to `{}`",
                            method.input.full_name()
                        ));
                }
            }
        }
    }

    /// A call's `options { timeout, retries, retry_unsafe }`.
    fn call_options(&mut self, call: &CallDef) -> Option<CallOptions> {
        let mut options = CallOptions { timeout_ms: DEFAULT_TIMEOUT_MS, retries: 0, retry_unsafe: false };
        for (key, value) in &call.options {
            match key.value.as_str() {
                "timeout" => options.timeout_ms = self.duration_ms(value)?,
                "retries" => match &value.value {
                    Literal::Int(n) if (0..=10).contains(n) => options.retries = *n as u32,
                    _ => drop(
                        self.reporter
                            .error(&value.span, "`retries` is a number from 0 to 10")
                            .label("not a retry count"),
                    ),
                },
                "endpoint" | "method" => {}
                "retry_unsafe" => match &value.value {
                    Literal::Bool(b) => options.retry_unsafe = *b,
                    _ => drop(
                        self.reporter
                            .error(&value.span, "`retry_unsafe` is true or false")
                            .label("not a bool"),
                    ),
                },
                other => drop(
                    self.reporter
                        .warning(&key.span, format!("unknown option `{other}`"))
                        .label("ignored")
                        .suggest(other, ["timeout", "retries", "retry_unsafe", "endpoint", "method"], None),
                ),
            }
        }
        Some(options)
    }

    fn duration_ms(&mut self, value: &Spanned<Literal>) -> Option<u32> {
        let parsed = match &value.value {
            Literal::Int(ms) => u32::try_from(*ms).ok(),
            Literal::String(text) => services::parse_duration_ms(text),
            _ => None,
        };
        if parsed.is_none() {
            self.reporter
                .error(
                    &value.span,
                    "expected a duration such as \"500ms\", \"5s\" or a number of milliseconds",
                )
                .label("not a duration");
        }
        parsed
    }

    fn output(&mut self, output: &ParamMap, scope: &Scope) -> Option<plan::Output> {
        let message = self.message(&output.schema)?;
        let mut ctx = Ctx::new(scope, Mode::Flow);
        let body = self.message_template(&output.fields, &message, &mut ctx);
        let headers = self.headers(&output.headers, &mut ctx);
        Some(plan::Output { message: self.layouts.layout(&message), body: Some(body), headers })
    }

    fn error_object(&mut self, error: &ParamMap, scope: &Scope) -> Option<plan::ErrorObject> {
        let mut ctx = Ctx::new(scope, Mode::Error);
        self.error_object_in(error, &mut ctx)
    }

    fn error_object_in(&mut self, error: &ParamMap, ctx: &mut Ctx) -> Option<plan::ErrorObject> {
        let message = self.message(&error.schema)?;
        let body = self.message_template(&error.fields, &message, ctx);
        let headers = self.headers(&error.headers, ctx);
        Some(plan::ErrorObject { message: self.layouts.layout(&message), body: Some(body), headers })
    }

    fn on_error(&mut self, on_error: &OnErrorDef, scope: &Scope) -> Option<plan::OnError> {
        let mut ctx = Ctx::new(scope, Mode::Error);
        self.on_error_in(on_error, &mut ctx)
    }

    fn on_error_in(&mut self, on_error: &OnErrorDef, ctx: &mut Ctx) -> Option<plan::OnError> {
        let schema =
            on_error.schema.as_ref().and_then(|schema| self.message(schema)).map(|m| self.layouts.layout(&m));
        let status = match &on_error.status {
            Some(status) if matches!(status.value, Literal::String(_)) => {
                self.value(status, &Ty::Int, ctx).map(|(v, _)| v)
            }
            Some(status) => self.status(status).map(|s| expr::literal_value(&Literal::Int(i64::from(s)))),
            None => None,
        };
        let message = on_error.message.as_ref().and_then(|m| self.value(m, &Ty::String, ctx)).map(|(v, _)| v);
        let params = on_error
            .params
            .iter()
            .filter_map(|(name, value)| {
                let (value, _) = self.value(value, &Ty::Dynamic, ctx)?;
                Some(plan::NamedValue { name: name.value.clone(), value: Some(value) })
            })
            .collect();
        Some(plan::OnError { status, message, params, schema })
    }

    /// A `rewrite` rule, checked with the regex engine the filter runs it with, so that a plan
    /// the compiler accepts never holds a rule the filter refuses.
    fn rewrite(&mut self, pattern: &Spanned<String>, template: &Spanned<String>) -> Option<plan::Rewrite> {
        let rewrite = plan::Rewrite { pattern: pattern.value.clone(), template: template.value.clone() };
        let regex = match regex_lite::Regex::new(&rewrite.anchored_pattern()) {
            Ok(regex) => regex,
            Err(error) => {
                // The anchored form's own wrapping is no part of the user's pattern: report
                // the pattern alone, whose error is what they wrote.
                let reason = regex_lite::Regex::new(&pattern.value).err().unwrap_or(error);
                self.reporter
                    .error(&pattern.span, "invalid rewrite pattern")
                    .label("not a regular expression")
                    .note(reason.to_string().trim_end().to_string());
                return None;
            }
        };
        let groups: Vec<&str> = regex.capture_names().flatten().collect();
        let mut rest = template.value.as_str();
        while let Some(open) = rest.find('<') {
            let after = &rest[open + 1..];
            let Some(close) = after.find('>') else { break };
            let name = &after[..close];
            if !groups.contains(&name) {
                self.reporter
                    .error(
                        &template.span,
                        format!("the rewrite template uses `<{name}>`, which the pattern does not capture"),
                    )
                    .label("unknown group")
                    .note("name groups in the pattern with `(?P<name>...)`");
                return None;
            }
            rest = &after[close + 1..];
        }
        Some(rewrite)
    }

    fn headers(&mut self, headers: &[Pair], ctx: &mut Ctx) -> Vec<plan::HeaderTemplate> {
        headers
            .iter()
            .filter_map(|(name, value)| {
                if !matches!(value.value, Literal::String(_)) {
                    self.reporter
                        .error(&value.span, format!("header `{}` must be a string", name.value))
                        .label("not a string")
                        .note("quote it: headers are text");
                    return None;
                }
                let (value, _) = self.value(value, &Ty::String, ctx)?;
                Some(plan::HeaderTemplate { name: name.value.to_ascii_lowercase(), value: Some(value) })
            })
            .collect()
    }

    fn message_template(
        &mut self,
        fields: &[FieldDef],
        message: &MessageDescriptor,
        ctx: &mut Ctx,
    ) -> plan::MessageTemplate {
        let mut out = Vec::new();
        let mut seen: HashMap<&str, &Span> = HashMap::new();
        for field in fields {
            if let Some(first) = seen.insert(&field.name.value, &field.name.span) {
                let first = first.clone();
                self.reporter
                    .error(&field.name.span, format!("field `{}` is set twice", field.name.value))
                    .label("second assignment")
                    .secondary(&first, "first assignment");
                continue;
            }
            let Some((index, descriptor)) =
                message.fields().enumerate().find(|(_, f)| f.name() == field.name.value)
            else {
                let names: Vec<String> = message.fields().map(|f| f.name().to_string()).collect();
                let listed = format!("its fields: {}", names.join(", "));
                self.reporter
                    .error(
                        &field.name.span,
                        format!("message `{}` has no field `{}`", message.full_name(), field.name.value),
                    )
                    .label("unknown field")
                    .suggest(&field.name.value, names.iter().map(String::as_str), Some(listed));
                continue;
            };
            let (value, typed) = match &field.value {
                FieldValue::Literal(value) => match self.field_value(value, &descriptor, ctx) {
                    Some((value, ty)) => {
                        let typed = typed_as_held(&value, &ty, &descriptor);
                        (Some(value), typed)
                    }
                    None => (None, false),
                },
                FieldValue::Message(nested) => (self.nested_message(field, &descriptor, nested, ctx), false),
                FieldValue::Repeated { source, fields } => {
                    (self.repeated(field, &descriptor, source, fields, ctx), false)
                }
            };
            if let Some(value) = value {
                out.push(plan::FieldTemplate { field: index as u32, value: Some(value), typed });
            }
        }
        plan::MessageTemplate { fields: out }
    }

    fn nested_message(
        &mut self,
        field: &FieldDef,
        descriptor: &FieldDescriptor,
        nested: &[FieldDef],
        ctx: &mut Ctx,
    ) -> Option<plan::Value> {
        match descriptor.kind() {
            Kind::Message(inner) if !descriptor.is_list() && !descriptor.is_map() => {
                let template = self.message_template(nested, &inner, ctx);
                Some(plan::Value { kind: Some(plan::ValueKind::Message(template)) })
            }
            _ => {
                self.reporter
                    .error(&field.name.span, format!("field `{}` is not a message", field.name.value))
                    .label(format!("`{}` is {}", field.name.value, describe_field(descriptor)))
                    .note(if descriptor.is_list() {
                        "use `repeated \"field\" \"resource:path\" { ... }`"
                    } else {
                        "assign it a value instead"
                    });
                None
            }
        }
    }

    fn repeated(
        &mut self,
        field: &FieldDef,
        descriptor: &FieldDescriptor,
        source: &Spanned<String>,
        fields: &[FieldDef],
        ctx: &mut Ctx,
    ) -> Option<plan::Value> {
        let Kind::Message(element) = descriptor.kind() else {
            self.reporter
                .error(
                    &field.name.span,
                    format!(
                        "`repeated` builds messages, but `{}` is {}",
                        field.name.value,
                        describe_field(descriptor)
                    ),
                )
                .label("not a repeated message")
                .note("assign a list reference instead: `field = \"{{ resource:list }}\"`");
            return None;
        };
        if !descriptor.is_list() {
            self.reporter
                .error(&field.name.span, format!("field `{}` is not repeated", field.name.value))
                .label(format!("`{}` is {}", field.name.value, describe_field(descriptor)))
                .note("use `message \"field\" { ... }`");
            return None;
        }
        let (reference, ty) = self.source_reference(source, ctx)?;
        let Ty::List(item_ty) = &ty else {
            self.reporter
                .error(&source.span, format!("`{}` is not a list", source.value))
                .label(format!("this is {}", ty.describe()));
            return None;
        };
        let item = if fields.is_empty() {
            if !item_ty.assignable_to(&Ty::Message(element.clone())) {
                self.reporter
                    .error(
                        &source.span,
                        format!(
                            "type mismatch: expected a list of `{}`, found {}",
                            element.full_name(),
                            ty.describe()
                        ),
                    )
                    .label("elements cannot be copied as they are");
                return None;
            }
            None
        } else {
            let Ty::Message(source_element) = item_ty.as_ref() else {
                self.reporter
                    .error(
                        &source.span,
                        format!("`{}` is a list of scalars; it has no fields to map", source.value),
                    )
                    .label(format!("this is {}", ty.describe()));
                return None;
            };
            let outer = ctx.item.replace(Item { source: reference.clone(), element: source_element.clone() });
            let template = self.message_template(fields, &element, ctx);
            ctx.item = outer;
            Some(template)
        };
        Some(plan::Value {
            kind: Some(plan::ValueKind::Repeated(Box::new(plan::RepeatedTemplate {
                source: Some(reference),
                item,
            }))),
        })
    }

    /// The plan index of a service, resolving its host, transport and codecs once.
    fn service_by_name(&mut self, name: &Spanned<String>) -> Option<u32> {
        if let Some(&index) = self.service_index.get(&name.value) {
            return Some(index);
        }
        if self.failed_services.contains(&name.value) {
            return None;
        }
        if self.unservable_services.contains(&name.value) {
            self.calls_unservable = true;
            return None;
        }
        let Some(info) = self.schemas.service_info(&name.value, self.config) else {
            if !self.schemas.complete {
                return None;
            }
            let names = self.schemas.service_names(self.config);
            self.reporter
                .error(&name.span, format!("unknown service `{}`", name.value))
                .label("no proto or `service` block defines this service")
                .suggest(&name.value, names.iter().map(String::as_str), None);
            return None;
        };
        let service = match services::resolve(&info, &self.options.clusters, &name.span, self.reporter) {
            services::Resolution::Ready(service) => service,
            services::Resolution::Unservable => {
                self.unservable_services.insert(name.value.clone());
                self.calls_unservable = true;
                return None;
            }
            services::Resolution::Invalid => {
                self.failed_services.insert(name.value.clone());
                return None;
            }
        };
        let index = self.services.len() as u32;
        self.services.push(service);
        self.service_index.insert(name.value.clone(), index);
        Some(index)
    }
}

/// What a call's `options` set.
struct CallOptions {
    timeout_ms: u32,
    retries: u32,
    retry_unsafe: bool,
}

/// The method's HTTP annotation, with the call's `options { endpoint, method }` overriding it.
fn http_annotation(call: &CallDef, method: &MethodInfo) -> Option<HttpAnnotation> {
    let option_text = |key: &str| {
        call.options.iter().find(|(k, _)| k.value == key).and_then(|(_, v)| match &v.value {
            Literal::String(text) => Some(text.clone()),
            _ => None,
        })
    };
    let mut http = method.http.clone();
    if let Some(endpoint) = option_text("endpoint") {
        http.get_or_insert_with(Default::default).endpoint = endpoint;
    }
    if let Some(verb) = option_text("method") {
        http.get_or_insert_with(Default::default).method = verb;
    }
    http
}

/// Whether a field's value is a reference to a value of the field's own type: a message of the
/// same type, text, a bool, bytes, an enum of the same type, or a list of any of these. The
/// filter holds every such value typed already (decoded or built by the same layout), so it
/// moves it into the field, or writes it from where it is held, without coercing it again.
/// Numbers are left out: a reference's type does not tell an int32 from an int64.
fn typed_as_held(value: &plan::Value, ty: &Ty, field: &FieldDescriptor) -> bool {
    let same = |ty: &Ty| match (ty, field.kind()) {
        (Ty::Message(held), Kind::Message(wanted)) => held.full_name() == wanted.full_name(),
        (Ty::Enum(held), Kind::Enum(wanted)) => held.full_name() == wanted.full_name(),
        (Ty::String, Kind::String) | (Ty::Bool, Kind::Bool) | (Ty::Bytes, Kind::Bytes) => true,
        _ => false,
    };
    let same_type = match ty {
        Ty::List(element) => field.is_list() && same(element),
        _ => !field.is_list() && !field.is_map() && same(ty),
    };
    same_type && matches!(value.kind, Some(plan::ValueKind::Reference(_)))
}
