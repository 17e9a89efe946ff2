//! The filter's codecs against prost-reflect: the same messages, through the plan's field
//! tables one way and through descriptors the other, must agree byte for byte in meaning.

use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage, SerializeOptions};
use semaphore_compiler::schema::Layouts;
use semaphore_filter::engine::codec::{self, proto};
use semaphore_plan::{Codec, Plan};
use serde_json::{json, Value};

const SCHEMA: &str = r#"
syntax = "proto3";
package oracle;

enum Color { COLOR_UNSPECIFIED = 0; RED = 1; GREEN = 2; }

message Inner {
  string label = 1;
  repeated int32 numbers = 2;
}

message Everything {
  double f_double = 1;
  float f_float = 2;
  int64 f_int64 = 3;
  uint64 f_uint64 = 4;
  int32 f_int32 = 5;
  fixed64 f_fixed64 = 6;
  fixed32 f_fixed32 = 7;
  bool f_bool = 8;
  string f_string = 9;
  Inner f_message = 10;
  bytes f_bytes = 11;
  uint32 f_uint32 = 12;
  Color f_enum = 13;
  sfixed32 f_sfixed32 = 14;
  sfixed64 f_sfixed64 = 15;
  sint32 f_sint32 = 16;
  sint64 f_sint64 = 17;
  repeated string r_string = 18;
  repeated sint64 r_sint64 = 19;
  repeated double r_double = 20;
  repeated Inner r_message = 21;
  repeated Color r_enum = 22;
  map<string, int64> m_string_int64 = 23;
  map<int32, Inner> m_int32_message = 24;
  repeated bool r_bool = 25;
  string camelCased_name = 26;
}
"#;

fn setup() -> (Plan, u32, MessageDescriptor) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("oracle.proto"), SCHEMA).unwrap();
    let pool = protox::compile(["oracle.proto"], [dir.path()]).unwrap();
    let pool = prost_reflect::DescriptorPool::from_file_descriptor_set(pool).unwrap();
    let descriptor = pool.get_message_by_name("oracle.Everything").unwrap();
    let mut layouts = Layouts::default();
    let index = layouts.layout(&descriptor);
    (Plan { messages: layouts.messages, ..Default::default() }, index, descriptor)
}

fn samples() -> Vec<Value> {
    vec![
        json!({}),
        json!({
            "f_double": 1.5, "f_float": 0.1, "f_int64": "-9007199254740993", "f_uint64": "18446744073709551615",
            "f_int32": -42, "f_fixed64": "12345678901234", "f_fixed32": 4000000000u32, "f_bool": true,
            "f_string": "héllo \"world\"", "f_message": {"label": "inner", "numbers": [1, -2, 300000]},
            "f_bytes": "AAEC/w==", "f_uint32": 7, "f_enum": "GREEN", "f_sfixed32": -5, "f_sfixed64": "-6",
            "f_sint32": -2147483648, "f_sint64": "-9223372036854775808",
            "r_string": ["a", "", "c"], "r_sint64": ["-1", "0", "1"], "r_double": [0.25, -1e300],
            "r_message": [{"label": "x"}, {"numbers": [5]}], "r_enum": ["RED", "COLOR_UNSPECIFIED", "GREEN"],
            "m_string_int64": {"a": "1", "b": "-2"}, "m_int32_message": {"7": {"label": "seven"}},
            "r_bool": [true, false], "camelCased_name": "keys are proto names"
        }),
        json!({"f_int32": 2147483647, "f_float": -3.5, "f_double": 1e-7, "f_enum": "RED", "r_bool": [false]}),
    ]
}

fn reflect_json(message: &DynamicMessage) -> Value {
    let options = SerializeOptions::new().use_proto_field_name(true);
    message.serialize_with_options(serde_json::value::Serializer, &options).unwrap()
}

#[test]
fn protobuf_decoding_agrees_with_prost_reflect() {
    let (plan, layout, descriptor) = setup();
    for sample in samples() {
        let message = DynamicMessage::deserialize(descriptor.clone(), sample.clone()).unwrap();
        let wire = prost::Message::encode_to_vec(&message);
        let decoded = proto::decode(&plan, layout, &wire).unwrap();
        let ours: Value =
            serde_json::from_slice(&codec::encode_json(&plan, layout, &decoded, codec::Int64Json::String))
                .unwrap();
        assert_eq!(ours, reflect_json(&message), "decoding {sample}");
    }
}

#[test]
fn protobuf_encoding_agrees_with_prost_reflect() {
    let (plan, layout, descriptor) = setup();
    for sample in samples() {
        let expected = DynamicMessage::deserialize(descriptor.clone(), sample.clone()).unwrap();
        let typed = codec::decode_json(&plan, layout, sample.to_string().as_bytes()).unwrap();
        let wire = proto::encode(&plan, layout, &typed);
        let decoded = DynamicMessage::decode(descriptor.clone(), wire.as_slice()).unwrap();
        assert_eq!(decoded, expected, "encoding {sample}");
        assert_eq!(decoded.descriptor().full_name(), "oracle.Everything");
    }
}

#[test]
fn json_encoding_agrees_with_prost_reflect() {
    let (plan, layout, descriptor) = setup();
    for sample in samples() {
        let message = DynamicMessage::deserialize(descriptor.clone(), sample.clone()).unwrap();
        let typed = codec::decode_json(&plan, layout, sample.to_string().as_bytes()).unwrap();
        let ours: Value =
            serde_json::from_slice(&codec::encode_json(&plan, layout, &typed, codec::Int64Json::String))
                .unwrap();
        assert_eq!(ours, reflect_json(&message), "{sample}");
    }
}

#[test]
fn xml_round_trips_agree_with_prost_reflect() {
    let (plan, layout, descriptor) = setup();
    for sample in samples() {
        let message = DynamicMessage::deserialize(descriptor.clone(), sample.clone()).unwrap();
        let typed = codec::decode_json(&plan, layout, sample.to_string().as_bytes()).unwrap();
        let (content_type, xml) =
            codec::encode_body(&plan, layout, Codec::Xml, codec::Int64Json::Number, &typed);
        assert_eq!(content_type, "application/xml");
        let shown = String::from_utf8_lossy(&xml).into_owned();
        let read =
            codec::decode_body(&plan, layout, Codec::Xml, &xml).unwrap_or_else(|e| panic!("{e}: {shown}"));
        assert_eq!(read, typed, "{shown}");
        let ours: Value =
            serde_json::from_slice(&codec::encode_json(&plan, layout, &read, codec::Int64Json::String))
                .unwrap();
        assert_eq!(ours, reflect_json(&message), "{shown}");
        let wire = proto::encode(&plan, layout, &read);
        assert_eq!(DynamicMessage::decode(descriptor.clone(), wire.as_slice()).unwrap(), message, "{shown}");
    }
}

#[test]
fn camel_case_json_names_are_read() {
    let (plan, layout, descriptor) = setup();
    let camel = json!({"fInt32": 3, "camelCasedName": "x", "rString": ["y"]});
    let typed = codec::decode_json(&plan, layout, camel.to_string().as_bytes()).unwrap();
    let expected = DynamicMessage::deserialize(descriptor, camel).unwrap();
    let ours: Value =
        serde_json::from_slice(&codec::encode_json(&plan, layout, &typed, codec::Int64Json::String)).unwrap();
    assert_eq!(ours, reflect_json(&expected));
}

/// The default JSON writes 64-bit integers as numbers; prost-reflect, which reads both forms,
/// reads them back to the same message, so no digit is lost (beyond 2^53 included).
#[test]
fn int64_numbers_read_back_exactly() {
    let (plan, layout, descriptor) = setup();
    for sample in samples() {
        let expected = DynamicMessage::deserialize(descriptor.clone(), sample.clone()).unwrap();
        let typed = codec::decode_json(&plan, layout, sample.to_string().as_bytes()).unwrap();
        let written = codec::encode_json(&plan, layout, &typed, codec::Int64Json::Number);
        let mut deserializer = serde_json::Deserializer::from_slice(&written);
        let read_back = DynamicMessage::deserialize(descriptor.clone(), &mut deserializer).unwrap();
        assert_eq!(read_back, expected, "{}", String::from_utf8_lossy(&written));
    }
}
