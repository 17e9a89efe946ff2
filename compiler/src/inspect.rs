//! Plans as people read them: `semaphore inspect` text and `semaphore graph` DOT or Mermaid.

use std::fmt::Write as _;

use semaphore_plan as plan;
use semaphore_plan::{Flow, Plan, ValueKind};

/// Renders a value back into the template syntax it was written in.
pub fn value(plan: &Plan, flow: &Flow, value: &plan::Value) -> String {
    match &value.kind {
        None => "null".into(),
        Some(ValueKind::Literal(literal)) => match &literal.kind {
            Some(plan::LiteralKind::String(s)) => format!("{s:?}"),
            Some(plan::LiteralKind::Int(i)) => i.to_string(),
            Some(plan::LiteralKind::Uint(u)) => u.to_string(),
            Some(plan::LiteralKind::Double(d)) => d.to_string(),
            Some(plan::LiteralKind::Bool(b)) => b.to_string(),
            Some(plan::LiteralKind::Empty(empty)) => match plan::Empty::try_from(*empty) {
                Ok(plan::Empty::List) => "[]".into(),
                _ => "{}".into(),
            },
            None => "null".into(),
        },
        Some(ValueKind::Reference(reference)) => format!("{{{{ {} }}}}", self::reference(flow, reference)),
        Some(ValueKind::Interpolation(interpolation)) => {
            let mut out = String::from("\"");
            for part in &interpolation.parts {
                match &part.kind {
                    Some(ValueKind::Literal(plan::Literal { kind: Some(plan::LiteralKind::String(s)) })) => {
                        out.push_str(s)
                    }
                    _ => out.push_str(&value_inline(plan, flow, part, true)),
                }
            }
            out.push('"');
            out
        }
        Some(ValueKind::Message(template)) => format!("message {{ {} fields }}", template.fields.len()),
        Some(ValueKind::Repeated(repeated)) => {
            let source = repeated.source.as_ref().map(|s| reference(flow, s)).unwrap_or_default();
            format!("repeated from {{{{ {source} }}}}")
        }
        Some(_) => format!("{{{{ {} }}}}", value_inline(plan, flow, value, false)),
    }
}

/// An expression without the surrounding `{{ }}` (or with, inside text).
fn value_inline(plan: &Plan, flow: &Flow, value: &plan::Value, braced: bool) -> String {
    let inner = match &value.kind {
        Some(ValueKind::Reference(r)) => reference(flow, r),
        Some(ValueKind::Function(call)) => {
            let name = call.function().name();
            let args: Vec<String> = call.args.iter().map(|a| value_inline(plan, flow, a, false)).collect();
            let path = if call.path.is_empty() { String::new() } else { format!(":{}", call.path.join(".")) };
            format!("{name}({}){path}", args.join(", "))
        }
        Some(ValueKind::Unary(unary)) => {
            let op = unary.op().symbol();
            let operand =
                unary.operand.as_ref().map(|o| value_inline(plan, flow, o, false)).unwrap_or_default();
            format!("{op}{operand}")
        }
        Some(ValueKind::Binary(binary)) => {
            let op = binary.op().symbol();
            let side = |v: &Option<plan::Value>| {
                v.as_ref().map(|v| value_inline(plan, flow, v, false)).unwrap_or_default()
            };
            format!("({} {op} {})", side(&binary.left), side(&binary.right))
        }
        Some(ValueKind::Literal(plan::Literal { kind: Some(plan::LiteralKind::String(s)) })) => {
            format!("'{s}'")
        }
        _ => return self::value(plan, flow, value),
    };
    if braced {
        format!("{{{{ {inner} }}}}")
    } else {
        inner
    }
}

fn reference(flow: &Flow, reference: &plan::Reference) -> String {
    let resource = match reference.slot {
        plan::INPUT_SLOT => "input".to_string(),
        plan::ERROR_SLOT => "error".to_string(),
        plan::ITEM_SLOT => "element".to_string(),
        slot => {
            flow.nodes.get(slot as usize - 1).map(|n| n.name.clone()).unwrap_or_else(|| format!("#{slot}"))
        }
    };
    let default =
        if reference.slot == plan::INPUT_SLOT { plan::Property::Request } else { plan::Property::Response };
    let property = match reference.property() {
        p if p == default
            || reference.slot == plan::ITEM_SLOT
            || reference.slot == plan::ERROR_SLOT && p == plan::Property::Error =>
        {
            String::new()
        }
        p => format!(".{}", p.name()),
    };
    let path = if reference.path.is_empty() { ".".to_string() } else { reference.path.join(".") };
    format!("{resource}{property}:{path}")
}

fn path(base: &str, segments: &[plan::PathSegment]) -> String {
    let mut out = base.to_string();
    for segment in segments {
        out.push('/');
        match &segment.segment {
            Some(plan::Segment::Literal(l)) => out.push_str(l),
            Some(plan::Segment::Param(p)) => write!(out, ":{p}").unwrap_or(()),
            Some(plan::Segment::Wildcard(w)) => write!(out, "*{w}").unwrap_or(()),
            None => {}
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn message_name(plan: &Plan, index: u32) -> &str {
    plan.messages.get(index as usize).map(|m| m.name.as_str()).unwrap_or("?")
}

fn template(
    plan: &Plan,
    flow: &Flow,
    layout: u32,
    template: &plan::MessageTemplate,
    indent: usize,
    out: &mut String,
) {
    let fields = plan.messages.get(layout as usize).map(|m| m.fields.as_slice()).unwrap_or(&[]);
    for field_template in &template.fields {
        let field = fields.get(field_template.field as usize);
        let name = field.map(|f| f.name.as_str()).unwrap_or("?");
        let pad = " ".repeat(indent);
        match field_template.value.as_ref().and_then(|v| v.kind.as_ref()) {
            Some(ValueKind::Message(nested)) => {
                let _ = writeln!(out, "{pad}message {name}:");
                template_nested(plan, flow, field, nested, indent + 2, out);
            }
            Some(ValueKind::Repeated(repeated)) => {
                let source = repeated.source.as_ref().map(|s| reference(flow, s)).unwrap_or_default();
                let _ = writeln!(out, "{pad}repeated {name} from {{{{ {source} }}}}:");
                if let Some(item) = &repeated.item {
                    template_nested(plan, flow, field, item, indent + 2, out);
                }
            }
            _ => {
                let rendered =
                    field_template.value.as_ref().map(|v| value(plan, flow, v)).unwrap_or_default();
                let _ = writeln!(out, "{pad}{name} = {rendered}");
            }
        }
    }
}

fn template_nested(
    plan: &Plan,
    flow: &Flow,
    field: Option<&plan::FieldLayout>,
    nested: &plan::MessageTemplate,
    indent: usize,
    out: &mut String,
) {
    if let Some(field) = field {
        template(plan, flow, field.message, nested, indent, out);
    }
}

fn headers(plan: &Plan, flow: &Flow, headers: &[plan::HeaderTemplate], indent: usize, out: &mut String) {
    for header in headers {
        let rendered = header.value.as_ref().map(|v| value(plan, flow, v)).unwrap_or_default();
        let _ = writeln!(out, "{}header {} = {rendered}", " ".repeat(indent), header.name);
    }
}

fn call(plan: &Plan, flow: &Flow, label: &str, call: &plan::Call, out: &mut String) {
    let service = plan.services.get(call.service as usize);
    let service_name = service.map(|s| s.name.as_str()).unwrap_or("?");
    let base = service.map(|s| s.base_path.as_str()).unwrap_or("");
    let _ = writeln!(
        out,
        "    {label} {service_name}.{}  {} {}  timeout {}ms{}",
        call.method,
        call.http_method,
        path(base, &call.path),
        call.timeout_ms,
        if call.retries > 0 { format!("  retries {}", call.retries) } else { String::new() }
    );
    let _ = writeln!(out, "      request {}:", message_name(plan, call.request_message));
    if let Some(request) = &call.request {
        template(plan, flow, call.request_message, request, 8, out);
    }
    for param in &call.params {
        let rendered = param.value.as_ref().map(|v| value(plan, flow, v)).unwrap_or_default();
        let _ = writeln!(out, "        param {} = {rendered}", param.name);
    }
    headers(plan, flow, &call.headers, 8, out);
    let _ = writeln!(out, "      response {}", message_name(plan, call.response_message));
}

fn on_error(plan: &Plan, flow: &Flow, on_error: &plan::OnError, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    let _ = writeln!(out, "{pad}on_error:");
    if let Some(status) = &on_error.status {
        let _ = writeln!(out, "{pad}  status = {}", value(plan, flow, status));
    }
    if let Some(message) = &on_error.message {
        let _ = writeln!(out, "{pad}  message = {}", value(plan, flow, message));
    }
    for param in &on_error.params {
        let rendered = param.value.as_ref().map(|v| value(plan, flow, v)).unwrap_or_default();
        let _ = writeln!(out, "{pad}  param {} = {rendered}", param.name);
    }
    if let Some(schema) = on_error.schema {
        let _ = writeln!(out, "{pad}  schema {}", message_name(plan, schema));
    }
}

fn error_object(plan: &Plan, flow: &Flow, error: &plan::ErrorObject, indent: usize, out: &mut String) {
    let _ = writeln!(out, "{}error {}:", " ".repeat(indent), message_name(plan, error.message));
    if let Some(body) = &error.body {
        template(plan, flow, error.message, body, indent + 2, out);
    }
    headers(plan, flow, &error.headers, indent + 2, out);
}

/// `semaphore inspect`: every part of the plan, in the words of the configuration.
pub fn text(plan: &Plan, size: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "plan format v{}, {size} bytes", plan::VERSION);
    let _ = writeln!(out, "\nservices:");
    for service in &plan.services {
        service_line(service, &mut out);
    }
    let _ = writeln!(out, "\nendpoints:");
    for endpoint in &plan.endpoints {
        endpoint_line(plan, endpoint, &mut out);
    }
    for flow in &plan.flows {
        flow_text(plan, flow, &mut out);
    }
    out
}

fn service_line(service: &plan::Service, out: &mut String) {
    let _ = writeln!(
        out,
        "  {}  cluster {}  authority {}{}  {}  {}/{}{}",
        service.name,
        service.cluster,
        service.authority,
        if service.tls { " (tls)" } else { "" },
        service.transport().name(),
        service.request_codec().name(),
        service.response_codec().name(),
        if service.int64_as_string { "  int64 as string" } else { "" }
    );
}

fn endpoint_line(plan: &Plan, endpoint: &plan::Endpoint, out: &mut String) {
    let flow = plan.flows.get(endpoint.flow as usize).map(|f| f.name.as_str()).unwrap_or("?");
    match endpoint.kind() {
        plan::EndpointKind::Grpc => {
            let _ = writeln!(out, "  grpc {} -> {flow}", endpoint.route);
            return;
        }
        plan::EndpointKind::GrpcReflection => {
            let files = plan.reflection.as_ref().map_or(0, |r| r.files.len());
            let _ = writeln!(out, "  grpc {} -> server reflection, {files} file(s)", endpoint.route);
            return;
        }
        plan::EndpointKind::Graphql => {
            let Some(graphql) = &plan.graphql else { return };
            let fields = |root: Option<u32>| {
                let object = root.and_then(|r| graphql.objects.get(r as usize));
                object.map(|o| o.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", "))
            };
            let mutation = fields(graphql.mutation).map(|m| format!("; mutation: {m}")).unwrap_or_default();
            let _ = writeln!(
                out,
                "  graphql {} {} -> query: {}{mutation}",
                endpoint.method,
                endpoint.route,
                fields(Some(graphql.query)).unwrap_or_default()
            );
            return;
        }
        plan::EndpointKind::Http => {}
    }
    let _ = writeln!(
        out,
        "  {} {} -> {flow}  status {}  {}/{}{}",
        endpoint.method,
        path("", &endpoint.path),
        endpoint.status,
        endpoint.request_codec().name(),
        endpoint.response_codec().name(),
        if endpoint.int64_as_string { "  int64 as string" } else { "" }
    );
}

fn flow_text(plan: &Plan, flow: &Flow, out: &mut String) {
    let kind = if flow.forward.is_some() { "proxy" } else { "flow" };
    let _ = writeln!(out, "\n{kind} {}", flow.name);
    let _ = writeln!(out, "  input {}", message_name(plan, flow.input));
    if !flow.input_headers.is_empty() {
        let _ = writeln!(out, "  input headers: {}", flow.input_headers.join(", "));
    }
    if flow.timeout_ms > 0 {
        let _ = writeln!(out, "  timeout {}ms", flow.timeout_ms);
    }
    for node in &flow.nodes {
        node_text(plan, flow, node, out);
    }
    if let Some(output) = &flow.output {
        let _ = writeln!(out, "  output {}:", message_name(plan, output.message));
        if let Some(body) = &output.body {
            template(plan, flow, output.message, body, 4, out);
        }
        headers(plan, flow, &output.headers, 4, out);
    }
    if let Some(error) = &flow.error {
        error_object(plan, flow, error, 2, out);
    }
    if let Some(handler) = &flow.on_error {
        on_error(plan, flow, handler, 2, out);
    }
    if let Some(forward) = &flow.forward {
        let service = plan.services.get(forward.service as usize).map(|s| s.name.as_str()).unwrap_or("?");
        let _ = writeln!(out, "  forward to {service}");
        headers(plan, flow, &forward.headers, 4, out);
        for rewrite in &forward.rewrites {
            let _ = writeln!(out, "    rewrite {:?} -> {:?}", rewrite.pattern, rewrite.template);
        }
    }
}

fn node_text(plan: &Plan, flow: &Flow, node: &plan::Node, out: &mut String) {
    let deps: Vec<&str> =
        node.depends_on.iter().filter_map(|d| flow.nodes.get(*d as usize)).map(|n| n.name.as_str()).collect();
    let _ = writeln!(
        out,
        "  node {}{}{}",
        node.name,
        if node.before { " (before)" } else { "" },
        if deps.is_empty() { String::new() } else { format!("  after {}", deps.join(", ")) }
    );
    if let Some(condition) = &node.condition {
        let _ = writeln!(out, "    if {}", value(plan, flow, condition));
    }
    match &node.call {
        Some(c) => call(plan, flow, "call", c, out),
        None => {
            for v in &node.values {
                let rendered = v.value.as_ref().map(|v| value(plan, flow, v)).unwrap_or_default();
                let _ = writeln!(out, "    value = {rendered}");
            }
        }
    }
    if !node.expect_status.is_empty() {
        let statuses: Vec<String> = node.expect_status.iter().map(u32::to_string).collect();
        let _ = writeln!(out, "    expect status {}", statuses.join(", "));
    }
    if let Some(rollback) = &node.rollback {
        call(plan, flow, "rollback", rollback, out);
    }
    if let Some(error) = &node.error {
        error_object(plan, flow, error, 4, out);
    }
    if let Some(handler) = &node.on_error {
        on_error(plan, flow, handler, 4, out);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

/// Each flow's dependency graph: one node per resource, an edge from each dependency to the
/// resource that waits for it.
pub fn graph(plan: &Plan, only: Option<&str>, format: GraphFormat) -> String {
    let mut out = String::new();
    for flow in plan.flows.iter().filter(|f| only.is_none_or(|name| f.name == name)) {
        let label = |node: &plan::Node| {
            let mut lines = vec![node.name.clone()];
            if let Some(c) = &node.call {
                let service = plan.services.get(c.service as usize).map(|s| s.name.as_str()).unwrap_or("?");
                lines.push(format!("{service}.{}", c.method));
            }
            if let Some(condition) = &node.condition {
                lines.push(format!("if {}", value(plan, flow, condition)));
            }
            if let Some(rollback) = &node.rollback {
                let service =
                    plan.services.get(rollback.service as usize).map(|s| s.name.as_str()).unwrap_or("?");
                lines.push(format!("rollback {service}.{}", rollback.method));
            }
            lines
        };
        match format {
            GraphFormat::Dot => {
                let _ = writeln!(out, "digraph {:?} {{", flow.name);
                let _ = writeln!(out, "  rankdir=LR;\n  node [shape=box];");
                for (index, node) in flow.nodes.iter().enumerate() {
                    let text = label(node).join("\\n").replace('"', "\\\"");
                    let style = if node.condition.is_some() { ", style=dashed" } else { "" };
                    let _ = writeln!(out, "  n{index} [label=\"{text}\"{style}];");
                }
                for (index, node) in flow.nodes.iter().enumerate() {
                    for dep in &node.depends_on {
                        let _ = writeln!(out, "  n{dep} -> n{index};");
                    }
                }
                let _ = writeln!(out, "}}");
            }
            GraphFormat::Mermaid => {
                let _ = writeln!(out, "---\ntitle: {}\n---\nflowchart LR", flow.name);
                for (index, node) in flow.nodes.iter().enumerate() {
                    let text = label(node).join("<br/>").replace('"', "#quot;");
                    let _ = writeln!(out, "  n{index}[\"{text}\"]");
                }
                for (index, node) in flow.nodes.iter().enumerate() {
                    for dep in &node.depends_on {
                        let _ = writeln!(out, "  n{dep} --> n{index}");
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(field: &str) -> plan::Value {
        plan::Value {
            kind: Some(ValueKind::Reference(plan::Reference {
                slot: plan::INPUT_SLOT,
                property: plan::Property::Request as i32,
                path: vec![field.into()],
                absent: None,
            })),
        }
    }

    /// Functions and operators read as users write them.
    #[test]
    fn values_read_as_written() {
        let plan = Plan::default();
        let flow = Flow::default();
        let call = |function: plan::Function, args: Vec<plan::Value>| plan::Value {
            kind: Some(ValueKind::Function(plan::FunctionCall {
                function: function as i32,
                args,
                path: vec![],
            })),
        };
        let decoded = call(plan::Function::Base64Decode, vec![input("token")]);
        assert_eq!(value(&plan, &flow, &decoded), "{{ base64_decode(input:token) }}");
        let compared = plan::Value {
            kind: Some(ValueKind::Binary(Box::new(plan::Binary {
                op: plan::BinaryOp::Le as i32,
                left: Some(call(plan::Function::Len, vec![input("name")])),
                right: Some(plan::Value {
                    kind: Some(ValueKind::Unary(Box::new(plan::Unary {
                        op: plan::UnaryOp::Negate as i32,
                        operand: Some(input("limit")),
                    }))),
                }),
            }))),
        };
        assert_eq!(value(&plan, &flow, &compared), "{{ (len(input:name) <= -input:limit) }}");
    }
}
