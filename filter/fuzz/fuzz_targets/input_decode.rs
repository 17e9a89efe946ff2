//! Any bytes as a request body, query string and path, against a plan with every field kind,
//! in every codec: a clear error or a typed message, never a panic; and JSON decoded in one
//! pass as it is decoded plainly. The same bytes as the body of a gRPC method, in each of its
//! protocols, and of a server reflection call.
#![no_main]

mod common;

use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use semaphore_filter::engine::codec::{self, proto};
use semaphore_filter::engine::{Engine, Execution, Request, Route};
use semaphore_plan::{
    Codec, DescriptorFile, Endpoint, EndpointKind, EnumValue, FieldLayout, Flow, Kind, MessageLayout, Output, Plan,
    Reflection,
};

fn field(name: &str, number: u32, kind: Kind, repeated: bool, message: u32) -> FieldLayout {
    FieldLayout {
        name: name.into(),
        json_name: name.into(),
        number,
        kind: kind as i32,
        repeated,
        message,
        enum_values: vec![EnumValue { name: "A".into(), number: 0 }, EnumValue { name: "B".into(), number: 1 }],
        map: false,
    }
}

fn plan() -> Plan {
    let kinds = [
        Kind::Double, Kind::Float, Kind::Int64, Kind::Uint64, Kind::Int32, Kind::Fixed64, Kind::Fixed32, Kind::Bool,
        Kind::String, Kind::Bytes, Kind::Uint32, Kind::Enum, Kind::Sfixed32, Kind::Sfixed64, Kind::Sint32, Kind::Sint64,
    ];
    let mut fields: Vec<FieldLayout> =
        kinds.iter().enumerate().map(|(i, k)| field(&format!("f{i}"), i as u32 + 1, *k, false, 0)).collect();
    fields.extend(kinds.iter().enumerate().map(|(i, k)| field(&format!("r{i}"), i as u32 + 20, *k, true, 0)));
    fields.push(field("child", 40, Kind::Message, false, 0));
    fields.push(field("children", 41, Kind::Message, true, 0));
    let mut map = field("labels", 42, Kind::Message, true, 1);
    map.map = true;
    fields.push(map);
    let entry = MessageLayout {
        name: "Entry".into(),
        fields: vec![field("key", 1, Kind::String, false, 0), field("value", 2, Kind::Int64, false, 0)],
    };
    Plan { messages: vec![MessageLayout { name: "All".into(), fields }, entry], ..Default::default() }
}

/// `plan()`'s message as a flow's input and output, served as a gRPC method, with reflection.
fn grpc_engine() -> Rc<Engine> {
    let mut plan = plan();
    let endpoint = |route: &str, kind: EndpointKind, flow: u32| Endpoint {
        method: "POST".into(),
        path: route
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| semaphore_plan::PathSegment { segment: Some(semaphore_plan::Segment::Literal(s.into())) })
            .collect(),
        flow,
        status: 200,
        route: route.into(),
        kind: kind as i32,
        ..Default::default()
    };
    plan.endpoints = vec![
        endpoint("/all.Service/Echo", EndpointKind::Grpc, 0),
        endpoint("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", EndpointKind::GrpcReflection, u32::MAX),
    ];
    plan.flows = vec![Flow {
        name: "echo".into(),
        input: 0,
        output: Some(Output { message: 0, ..Default::default() }),
        ..Default::default()
    }];
    plan.reflection = Some(Reflection {
        list_services: vec![10, 13, 10, 11, b'a', b'l', b'l', b'.', b'S', b'e', b'r', b'v', b'i', b'c', b'e'],
        files: vec![DescriptorFile {
            name: "all.proto".into(),
            descriptor: vec![10, 9, b'a', b'l', b'l', b'.', b'p', b'r', b'o', b't', b'o'],
            imports: vec![0, 7],
            symbols: vec!["all.Service".into(), "All".into()],
        }],
    });
    Engine::new(plan)
}

const CONTENT_TYPES: [&str; 6] = [
    "application/grpc",
    "application/grpc-web",
    "application/grpc-web-text",
    "application/proto",
    "application/json",
    "application/grpc+json",
];

fuzz_target!(|data: &[u8]| {
    let plan = plan();
    // The one-pass JSON decoder agrees with the plain one, whole and projected.
    for fields in [None, Some(&[0, 8, 20, 32, 34][..])] {
        let plain = codec::decode_json_plainly(&plan, 0, data, fields);
        assert_eq!(codec::decode_json_fields(&plan, 0, data, fields), plain);
    }
    for codec_kind in [Codec::Json, Codec::Proto, Codec::FormUrlencoded, Codec::Xml] {
        if let Ok(message) = codec::decode_body(&plan, 0, codec_kind, data) {
            // What decodes must encode, in every codec, and read back.
            for out in [Codec::Json, Codec::Proto, Codec::FormUrlencoded, Codec::Xml] {
                let (_, bytes) = codec::encode_body(&plan, 0, out, codec::Int64Json::Number, &message);
                let _ = codec::decode_body(&plan, 0, out, &bytes);
            }
            let _ = proto::encode(&plan, 0, &message);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let mut message = semaphore_filter::engine::value::Map::new();
        let _ = codec::decode_form(&plan, 0, text, &mut message);
    }
    // A gRPC method's request and a reflection request, in each protocol: one answer each.
    let engine = grpc_engine();
    for content_type in CONTENT_TYPES {
        for path in ["/all.Service/Echo", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "/all.Service/X"] {
            let matched = match engine.route("POST", path, content_type) {
                Route::Endpoint(matched) => matched,
                _ => continue,
            };
            if let Some(reply) = engine.answer_without_flow(&matched, data) {
                assert_eq!(reply.status, 200, "{reply:?}");
                continue;
            }
            let _ = engine.streams(&matched) && engine.first_message_arrived(&matched, data);
            let mut host = common::Host0::default();
            let request = Request { headers: Vec::new(), body: data.to_vec(), now_unix_ms: 0, seed: 1 };
            let execution = Execution::start(Rc::clone(&engine), matched, request, &mut host);
            assert!(execution.is_finished() && host.replies.len() == 1, "{:?}", host.replies);
        }
    }
});
