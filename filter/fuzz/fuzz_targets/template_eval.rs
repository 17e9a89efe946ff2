//! Any bytes as a template (a plan value: references, functions, operators, nested messages),
//! evaluated into a flow's output after a call: a value, an absence or a clear error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use semaphore_filter::engine::Engine;
use semaphore_plan::*;

#[path = "common.rs"]
mod common;

fn field(name: &str, number: u32, kind: Kind) -> FieldLayout {
    FieldLayout { name: name.into(), json_name: name.into(), number, kind: kind as i32, ..Default::default() }
}

fuzz_target!(|data: &[u8]| {
    let Ok(template) = MessageTemplate::decode(data) else { return };
    let mut list = field("items", 3, Kind::Message);
    list.repeated = true;
    let layout = MessageLayout {
        name: "Any".into(),
        fields: vec![field("id", 1, Kind::String), field("n", 2, Kind::Int64), list, field("f", 4, Kind::Double)],
    };
    let call = Call {
        service: 0,
        method: "Get".into(),
        http_method: "GET".into(),
        path: vec![PathSegment { segment: Some(Segment::Literal("x".into())) }],
        request_message: 0,
        response_message: 0,
        request: Some(template.clone()),
        timeout_ms: 1,
        ..Default::default()
    };
    let plan = Plan {
        services: vec![Service { name: "S".into(), cluster: "c".into(), authority: "a".into(), ..Default::default() }],
        messages: vec![layout],
        endpoints: vec![Endpoint {
            method: "POST".into(),
            path: vec![PathSegment { segment: Some(Segment::Literal("run".into())) }],
            flow: 0,
            status: 200,
            ..Default::default()
        }],
        flows: vec![Flow {
            name: "F".into(),
            input: 0,
            nodes: vec![Node { name: "n".into(), call: Some(call), ..Default::default() }],
            output: Some(Output { message: 0, body: Some(template), headers: vec![] }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let engine = Engine::new(plan);
    common::run(&engine, "POST", "/run", b"{\"id\":\"1\",\"n\":5,\"items\":[{\"id\":\"a\"},{\"n\":2}]}", b"{\"id\":\"2\",\"f\":1.5}");
});
