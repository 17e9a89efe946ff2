//! The binary plan: everything the filter needs to run the flows, resolved ahead of time by the
//! compiler so that the request path only walks tables.
//!
//! On the wire a plan is an 8-byte header (`MAGIC`, then the format version as a little-endian
//! u16 and two reserved bytes) followed by the protobuf encoding of [`Plan`]. The header lets the
//! filter refuse a plan built by another compiler version before it tries to decode it.

use std::fmt;

use prost::Message;

pub mod format;
mod known;
pub mod visit;
pub mod vocabulary;

pub const MAGIC: [u8; 4] = *b"SMPH";
/// 2: `OnError.schema` became optional (it was an index + 1), endpoints say their kind.
/// 3: gRPC endpoints and reflection. 4: the GraphQL schema.
pub const VERSION: u16 = 4;
pub const HEADER_LEN: usize = 8;

/// Why a byte string is not a plan this build can run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    TooShort(usize),
    BadMagic,
    UnsupportedVersion(u16),
    Malformed(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooShort(len) => {
                write!(f, "plan is {len} bytes, shorter than its {HEADER_LEN}-byte header")
            }
            DecodeError::BadMagic => write!(f, "not a semaphore plan (bad magic header)"),
            DecodeError::UnsupportedVersion(v) => write!(
                f,
                "plan format version {v} is not supported (this filter runs version {VERSION}); \
                 recompile the flows with a matching `semaphore compile`"
            ),
            DecodeError::Malformed(e) => write!(f, "plan does not decode: {e}"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl Plan {
    pub fn encode_to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.encoded_len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        self.encode_raw(&mut out);
        out
    }

    pub fn decode_from_bytes(bytes: &[u8]) -> Result<Plan, DecodeError> {
        let (header, body) = match bytes.split_at_checked(HEADER_LEN) {
            Some(parts) => parts,
            None => return Err(DecodeError::TooShort(bytes.len())),
        };
        if header[..4] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let version = u16::from_le_bytes([header[4], header[5]]);
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let plan = Plan::decode(body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        known::check(&plan).map_err(DecodeError::Malformed)?;
        Ok(plan)
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct Plan {
    #[prost(message, repeated, tag = "1")]
    pub services: Vec<Service>,
    /// Message layouts; every `message` index in the plan points here.
    #[prost(message, repeated, tag = "2")]
    pub messages: Vec<MessageLayout>,
    #[prost(message, repeated, tag = "3")]
    pub endpoints: Vec<Endpoint>,
    #[prost(message, repeated, tag = "4")]
    pub flows: Vec<Flow>,
    /// The most the filter logs: `error`, `warn`, `info`, `debug` or `trace`; empty is `info`.
    #[prost(string, tag = "5")]
    pub log_level: String,
    /// What gRPC server reflection answers, when a gRPC endpoint serves a method.
    #[prost(message, optional, tag = "6")]
    pub reflection: Option<Reflection>,
    /// The GraphQL schema its `Graphql` endpoints serve, when a flow has a GraphQL endpoint.
    #[prost(message, optional, tag = "7")]
    pub graphql: Option<Graphql>,
}

/// The one GraphQL schema every `graphql` endpoint is a field of, resolved by the compiler:
/// each object type with its fields, each field saying where its value comes from. Input
/// types are the flows' input layouts, read field by field.
#[derive(Clone, PartialEq, Message)]
pub struct Graphql {
    /// Object types. The roots and the namespaces of dotted paths hold flows' fields; the
    /// others show a message layout's values.
    #[prost(message, repeated, tag = "1")]
    pub objects: Vec<GraphqlObject>,
    /// Index into `objects` of the `Query` root.
    #[prost(uint32, tag = "2")]
    pub query: u32,
    /// Index into `objects` of the `Mutation` root, when a flow is a mutation.
    #[prost(uint32, optional, tag = "3")]
    pub mutation: Option<u32>,
    /// The introspection answer: the JSON of `__schema` with every type in full, each type
    /// referred to as `{kind, name, ofType}`. Empty when introspection is off.
    #[prost(bytes = "vec", tag = "4")]
    pub introspection: Vec<u8>,
    /// The deepest selection set a query may nest, and the most fields it may select.
    #[prost(uint32, tag = "5")]
    pub max_depth: u32,
    #[prost(uint32, tag = "6")]
    pub max_fields: u32,
    /// The most flows one request may run.
    #[prost(uint32, tag = "7")]
    pub max_flows: u32,
    /// `graphql { address }` gives the schema a listener of its own, whose requests carry
    /// `GRAPHQL_LISTENER_HEADER`; without one, the filter ignores that header.
    #[prost(bool, tag = "8")]
    pub own_listener: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct GraphqlObject {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, repeated, tag = "2")]
    pub fields: Vec<GraphqlField>,
}

/// A field of an object type: it runs a flow, opens a namespace, or shows a field of the
/// message its object shows.
#[derive(Clone, PartialEq, Message)]
pub struct GraphqlField {
    #[prost(string, tag = "1")]
    pub name: String,
    /// Index into `Graphql::objects` of its type, when that is an object type.
    #[prost(uint32, optional, tag = "2")]
    pub object: Option<u32>,
    #[prost(oneof = "GraphqlSource", tags = "3, 4, 5")]
    pub source: Option<GraphqlSource>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum GraphqlSource {
    /// Runs this flow (index into `Plan::flows`), its arguments the flow's input fields; its
    /// value is the flow's output, shown by `object`.
    #[prost(uint32, tag = "3")]
    Flow(u32),
    /// A namespace of a dotted path: its value is `object` itself.
    #[prost(bool, tag = "4")]
    Namespace(bool),
    /// The field of this index in the layout its object shows (a map's entries are a list of
    /// `{key, value}` objects).
    #[prost(uint32, tag = "5")]
    Field(u32),
}

/// gRPC server reflection's answers, worked out by the compiler: the list of the services
/// served, and the protobuf files that describe them.
#[derive(Clone, PartialEq, Message)]
pub struct Reflection {
    /// The encoded `grpc.reflection.v1.ListServiceResponse`: the services served, the
    /// reflection service's own included.
    #[prost(bytes = "vec", tag = "1")]
    pub list_services: Vec<u8>,
    #[prost(message, repeated, tag = "2")]
    pub files: Vec<DescriptorFile>,
}

/// One protobuf file, as reflection sends it.
#[derive(Clone, PartialEq, Message)]
pub struct DescriptorFile {
    /// Its name, as `import` names it.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The encoded `google.protobuf.FileDescriptorProto`.
    #[prost(bytes = "vec", tag = "2")]
    pub descriptor: Vec<u8>,
    /// Indices into `Reflection::files` of every file it imports, directly or not, each once:
    /// reflection sends them with it.
    #[prost(uint32, repeated, tag = "3")]
    pub imports: Vec<u32>,
    /// The fully qualified names it defines: messages, enums, services and their methods
    /// (`package.Service.Method`), nested ones too.
    #[prost(string, repeated, tag = "4")]
    pub symbols: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Transport {
    Http = 0,
    Grpc = 1,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Codec {
    Json = 0,
    Proto = 1,
    FormUrlencoded = 2,
    Xml = 3,
}

/// An upstream service: the Envoy cluster that reaches it and how to talk to it.
#[derive(Clone, PartialEq, Message)]
pub struct Service {
    /// Fully qualified proto service name, e.g. `proto.Users`.
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub cluster: String,
    /// Sent as `:authority` on every call.
    #[prost(string, tag = "3")]
    pub authority: String,
    #[prost(enumeration = "Transport", tag = "4")]
    pub transport: i32,
    #[prost(enumeration = "Codec", tag = "5")]
    pub request_codec: i32,
    #[prost(enumeration = "Codec", tag = "6")]
    pub response_codec: i32,
    /// Path prefix taken from the service host (`http://host/api/` -> `/api`), no trailing slash.
    #[prost(string, tag = "7")]
    pub base_path: String,
    /// The cluster reaches the service over TLS (`https://` host).
    #[prost(bool, tag = "8")]
    pub tls: bool,
    /// JSON bodies sent to it write 64-bit integers as strings (the proto3 JSON mapping)
    /// instead of numbers.
    #[prost(bool, tag = "9")]
    pub int64_as_string: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Kind {
    Double = 0,
    Float = 1,
    Int64 = 2,
    Uint64 = 3,
    Int32 = 4,
    Fixed64 = 5,
    Fixed32 = 6,
    Bool = 7,
    String = 8,
    Message = 9,
    Bytes = 10,
    Uint32 = 11,
    Enum = 12,
    Sfixed32 = 13,
    Sfixed64 = 14,
    Sint32 = 15,
    Sint64 = 16,
}

#[derive(Clone, PartialEq, Message)]
pub struct MessageLayout {
    /// Fully qualified message name.
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, repeated, tag = "2")]
    pub fields: Vec<FieldLayout>,
}

#[derive(Clone, PartialEq, Message)]
pub struct FieldLayout {
    /// The field name as written in the proto; values are keyed by it inside the filter.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The proto3 JSON name (lowerCamelCase unless `json_name` says otherwise).
    #[prost(string, tag = "2")]
    pub json_name: String,
    #[prost(uint32, tag = "3")]
    pub number: u32,
    #[prost(enumeration = "Kind", tag = "4")]
    pub kind: i32,
    #[prost(bool, tag = "5")]
    pub repeated: bool,
    /// For `Kind::Message`: index into `Plan::messages`.
    #[prost(uint32, tag = "6")]
    pub message: u32,
    /// For `Kind::Enum`: the enum's values.
    #[prost(message, repeated, tag = "7")]
    pub enum_values: Vec<EnumValue>,
    /// A `map<K, V>`: `message` is its entry type, whose fields are `key` (1) and `value` (2).
    /// `repeated` is set too, as maps are repeated entries on the wire.
    #[prost(bool, tag = "8")]
    pub map: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct EnumValue {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(int32, tag = "2")]
    pub number: i32,
}

/// How a client reaches a flow. Each kind routes, reads its input and writes its answer in
/// its own way; the filter's `engine/endpoint/` has one file per kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum EndpointKind {
    /// A method and a path template; the body in the endpoint's codecs.
    Http = 0,
    /// A unary gRPC method, `POST /package.Service/Method`, its messages in protobuf.
    Grpc = 1,
    /// gRPC server reflection (`grpc.reflection.v1` or `v1alpha`), answered from
    /// `Plan::reflection`; its `flow` is none.
    GrpcReflection = 2,
    /// The GraphQL schema (`Plan::graphql`), served at its path over `POST` and `GET`; its
    /// `flow` is none, as a request may run several.
    Graphql = 3,
}

/// An endpoint that exposes a flow.
#[derive(Clone, PartialEq, Message)]
pub struct Endpoint {
    /// Upper-case HTTP method.
    #[prost(string, tag = "1")]
    pub method: String,
    #[prost(message, repeated, tag = "2")]
    pub path: Vec<PathSegment>,
    /// Index into `Plan::flows`.
    #[prost(uint32, tag = "3")]
    pub flow: u32,
    /// Status of a successful answer.
    #[prost(uint32, tag = "4")]
    pub status: u32,
    #[prost(enumeration = "Codec", tag = "5")]
    pub request_codec: i32,
    #[prost(enumeration = "Codec", tag = "6")]
    pub response_codec: i32,
    /// The route as written, for logs.
    #[prost(string, tag = "7")]
    pub route: String,
    /// JSON answers write 64-bit integers as strings (the proto3 JSON mapping) instead of
    /// numbers.
    #[prost(bool, tag = "8")]
    pub int64_as_string: bool,
    #[prost(enumeration = "EndpointKind", tag = "9")]
    pub kind: i32,
}

/// One `/`-separated piece of a route or upstream path template.
#[derive(Clone, PartialEq, Message)]
pub struct PathSegment {
    #[prost(oneof = "Segment", tags = "1, 2, 3")]
    pub segment: Option<Segment>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Segment {
    /// Matched or written as is.
    #[prost(string, tag = "1")]
    Literal(String),
    /// `:name`: exactly one segment, bound to field `name`.
    #[prost(string, tag = "2")]
    Param(String),
    /// `*name`: the rest of the path, bound to field `name`.
    #[prost(string, tag = "3")]
    Wildcard(String),
}

#[derive(Clone, PartialEq, Message)]
pub struct Flow {
    #[prost(string, tag = "1")]
    pub name: String,
    /// Index into `Plan::messages` of the input message.
    #[prost(uint32, tag = "2")]
    pub input: u32,
    /// Declared input headers, lower-cased.
    #[prost(string, repeated, tag = "3")]
    pub input_headers: Vec<String>,
    /// In dependency order: a node only depends on nodes before it.
    #[prost(message, repeated, tag = "4")]
    pub nodes: Vec<Node>,
    #[prost(message, optional, tag = "5")]
    pub output: Option<Output>,
    /// The error object answered when the flow fails (the flow's own, else the global one).
    #[prost(message, optional, tag = "6")]
    pub error: Option<ErrorObject>,
    /// Status, message and params of a failure, for nodes that set none of their own.
    #[prost(message, optional, tag = "7")]
    pub on_error: Option<OnError>,
    /// Deadline of the whole flow; 0 for none.
    #[prost(uint32, tag = "8")]
    pub timeout_ms: u32,
    /// Set for a `proxy`: after its nodes, the original request is forwarded.
    #[prost(message, optional, tag = "9")]
    pub forward: Option<Forward>,
}

/// `forward "service" { header {} }` with the proxy's `rewrite` rules.
#[derive(Clone, PartialEq, Message)]
pub struct Forward {
    /// Index into `Plan::services`.
    #[prost(uint32, tag = "1")]
    pub service: u32,
    #[prost(message, repeated, tag = "2")]
    pub headers: Vec<HeaderTemplate>,
    /// The first rule whose pattern matches the path rewrites it.
    #[prost(message, repeated, tag = "3")]
    pub rewrites: Vec<Rewrite>,
}

/// A regular expression with named groups, and the path built from them (`/<name>/...`).
#[derive(Clone, PartialEq, Message)]
pub struct Rewrite {
    #[prost(string, tag = "1")]
    pub pattern: String,
    #[prost(string, tag = "2")]
    pub template: String,
}

impl Rewrite {
    /// The pattern as the compiler checks it and the filter runs it: it must match the whole
    /// path (without the query), as Envoy's own regex route matching does.
    pub fn anchored_pattern(&self) -> String {
        format!("^(?:{})$", self.pattern)
    }
}

/// The request header that names the cluster a proxy's request goes on to. The Envoy route that
/// reads its cluster from it (`cluster_header`) matches only requests that carry it, and the
/// filter removes it from every request a client sends, so only a proxy's forwarding sets it.
pub const FORWARD_CLUSTER_HEADER: &str = "x-semaphore-forward-cluster";

/// The cluster, and the internal listener it reaches, through which a gRPC endpoint's request
/// makes one hop inside Envoy. Envoy answers a gRPC request's local replies trailers-only,
/// dropping their body: the filter sends the request on to this listener, whose filter runs
/// the flow and answers it as a plain HTTP request, and the answer comes back through the
/// first filter as an upstream's, which turns it into gRPC.
pub const GRPC_HOP_CLUSTER: &str = "semaphore_grpc";

/// The request header the `graphql { address }` listener adds to every request before the
/// filter sees it: there, as on Semaphore's GraphQL listener, the schema answers on any path.
pub const GRAPHQL_LISTENER_HEADER: &str = "x-semaphore-graphql-listener";

/// `error "schema" { ... }`: the body answered to the client when a flow fails.
#[derive(Clone, PartialEq, Message)]
pub struct ErrorObject {
    /// Index into `Plan::messages`.
    #[prost(uint32, tag = "1")]
    pub message: u32,
    #[prost(message, optional, tag = "2")]
    pub body: Option<MessageTemplate>,
    #[prost(message, repeated, tag = "3")]
    pub headers: Vec<HeaderTemplate>,
}

/// `on_error { status, message, params, schema }`.
#[derive(Clone, PartialEq, Message)]
pub struct OnError {
    #[prost(message, optional, tag = "1")]
    pub status: Option<Value>,
    #[prost(message, optional, tag = "2")]
    pub message: Option<Value>,
    #[prost(message, repeated, tag = "3")]
    pub params: Vec<NamedValue>,
    /// Index into `Plan::messages` of the schema that decodes an upstream's error body.
    #[prost(uint32, optional, tag = "4")]
    pub schema: Option<u32>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Node {
    #[prost(string, tag = "1")]
    pub name: String,
    /// Indices of the nodes (within the flow) this node waits for.
    #[prost(uint32, repeated, tag = "2")]
    pub depends_on: Vec<u32>,
    /// `None` for an intermediate node, which only computes `values`.
    #[prost(message, optional, tag = "3")]
    pub call: Option<Call>,
    /// The conjunction of every `if` around the resource; a false one skips it.
    #[prost(message, optional, tag = "4")]
    pub condition: Option<Value>,
    /// The compensating call, run when the flow fails after this node completed.
    #[prost(message, optional, tag = "5")]
    pub rollback: Option<Call>,
    #[prost(message, optional, tag = "6")]
    pub error: Option<ErrorObject>,
    #[prost(message, optional, tag = "7")]
    pub on_error: Option<OnError>,
    /// Statuses that count as success; empty means any 2xx.
    #[prost(uint32, repeated, tag = "8")]
    pub expect_status: Vec<u32>,
    /// A `before { }` node: every other node of the flow waits for it.
    #[prost(bool, tag = "9")]
    pub before: bool,
    /// What an intermediate node (no call) computes; its "response".
    #[prost(message, repeated, tag = "10")]
    pub values: Vec<NamedValue>,
    /// The rollback reads the node's own response or headers: when the call's outcome is
    /// unknown (it timed out after it was sent), the rollback cannot be built.
    #[prost(bool, tag = "11")]
    pub rollback_reads_response: bool,
}

/// An upstream call.
#[derive(Clone, PartialEq, Message)]
pub struct Call {
    /// Index into `Plan::services`.
    #[prost(uint32, tag = "1")]
    pub service: u32,
    /// The proto method name, e.g. `Get`.
    #[prost(string, tag = "2")]
    pub method: String,
    /// Upper-case HTTP method from the `semaphore.api.http` annotation.
    #[prost(string, tag = "3")]
    pub http_method: String,
    #[prost(message, repeated, tag = "4")]
    pub path: Vec<PathSegment>,
    /// Index into `Plan::messages` of the request message.
    #[prost(uint32, tag = "5")]
    pub request_message: u32,
    /// Index into `Plan::messages` of the response message.
    #[prost(uint32, tag = "6")]
    pub response_message: u32,
    #[prost(message, optional, tag = "7")]
    pub request: Option<MessageTemplate>,
    #[prost(message, repeated, tag = "8")]
    pub headers: Vec<HeaderTemplate>,
    /// Values for the path's `:name` segments.
    #[prost(message, repeated, tag = "9")]
    pub params: Vec<NamedValue>,
    #[prost(uint32, tag = "10")]
    pub timeout_ms: u32,
    /// Extra attempts after a failure that may be transient.
    #[prost(uint32, tag = "11")]
    pub retries: u32,
    /// Whether retries are allowed although the method is not idempotent.
    #[prost(bool, tag = "12")]
    pub retry_unsafe: bool,
    /// The fields of the response that templates read, by index in its layout; the filter
    /// decodes only these. `None` when a template reads the whole response.
    #[prost(message, optional, tag = "13")]
    pub response_fields: Option<FieldSet>,
    /// No template reads the headers of this call's answer (`{{ node.header:name }}`), so the
    /// filter reads only its status. False in plans that do not say: the filter reads them all.
    #[prost(bool, tag = "14")]
    pub response_headers_unread: bool,
    /// Nothing reads the request this call sent once it is sent: no template reads it
    /// (`{{ node.request:path }}`) and the node has no rollback, whose operator message quotes
    /// it. The filter then encodes it from the values it takes, where they are held, and keeps
    /// no copy. False in plans that do not say: the filter keeps it.
    #[prost(bool, tag = "15")]
    pub request_unread: bool,
}

/// Fields of a message, by index in its layout.
#[derive(Clone, PartialEq, Message)]
pub struct FieldSet {
    #[prost(uint32, repeated, tag = "1")]
    pub fields: Vec<u32>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Output {
    /// Index into `Plan::messages`.
    #[prost(uint32, tag = "1")]
    pub message: u32,
    #[prost(message, optional, tag = "2")]
    pub body: Option<MessageTemplate>,
    #[prost(message, repeated, tag = "3")]
    pub headers: Vec<HeaderTemplate>,
}

#[derive(Clone, PartialEq, Message)]
pub struct HeaderTemplate {
    /// Lower-cased header name.
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Value>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NamedValue {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Value>,
}

/// The fields of a message to build; fields not listed stay absent.
#[derive(Clone, PartialEq, Message)]
pub struct MessageTemplate {
    #[prost(message, repeated, tag = "1")]
    pub fields: Vec<FieldTemplate>,
}

#[derive(Clone, PartialEq, Message)]
pub struct FieldTemplate {
    /// Index of the field in the message's layout.
    #[prost(uint32, tag = "1")]
    pub field: u32,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Value>,
    /// The value is a reference to a value of the field's own type (a message, text, a bool,
    /// bytes, an enum, or a list of these): it is already typed as the field holds it, so the
    /// filter moves it in, or writes it from where it is held, without coercing it again.
    /// Plans without it coerce every value, as before.
    #[prost(bool, tag = "3")]
    pub typed: bool,
}

/// A value computed per request.
#[derive(Clone, PartialEq, Message)]
pub struct Value {
    #[prost(oneof = "ValueKind", tags = "1, 2, 3, 4, 5, 6, 7, 8")]
    pub kind: Option<ValueKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ValueKind {
    #[prost(message, tag = "1")]
    Literal(Literal),
    #[prost(message, tag = "2")]
    Reference(Reference),
    /// Text and values concatenated into a string.
    #[prost(message, tag = "3")]
    Interpolation(Interpolation),
    #[prost(message, tag = "4")]
    Message(MessageTemplate),
    #[prost(message, tag = "5")]
    Function(FunctionCall),
    #[prost(message, tag = "6")]
    Unary(Box<Unary>),
    #[prost(message, tag = "7")]
    Binary(Box<Binary>),
    /// One message per element of a repeated source.
    #[prost(message, tag = "8")]
    Repeated(Box<RepeatedTemplate>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Function {
    Sprintf = 0,
    Strconcat = 1,
    Jwt = 2,
    Len = 3,
    Base64 = 4,
    Base64Decode = 5,
    Json = 6,
    Now = 7,
    Uuid = 8,
    Lower = 9,
    Upper = 10,
}

#[derive(Clone, PartialEq, Message)]
pub struct FunctionCall {
    #[prost(enumeration = "Function", tag = "1")]
    pub function: i32,
    #[prost(message, repeated, tag = "2")]
    pub args: Vec<Value>,
    /// Fields to descend into the result (`jwt(...):sub`).
    #[prost(string, repeated, tag = "3")]
    pub path: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum UnaryOp {
    Not = 0,
    Negate = 1,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum BinaryOp {
    Eq = 0,
    Ne = 1,
    Lt = 2,
    Le = 3,
    Gt = 4,
    Ge = 5,
    And = 6,
    Or = 7,
    Add = 8,
    Sub = 9,
    Mul = 10,
    Div = 11,
    Rem = 12,
}

#[derive(Clone, PartialEq, Message)]
pub struct Unary {
    #[prost(enumeration = "UnaryOp", tag = "1")]
    pub op: i32,
    #[prost(message, optional, tag = "2")]
    pub operand: Option<Value>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Binary {
    #[prost(enumeration = "BinaryOp", tag = "1")]
    pub op: i32,
    #[prost(message, optional, tag = "2")]
    pub left: Option<Value>,
    #[prost(message, optional, tag = "3")]
    pub right: Option<Value>,
}

/// `repeated "field" "resource:path" { ... }`: the template is built once per element, with
/// `ITEM_SLOT` references reading the element.
#[derive(Clone, PartialEq, Message)]
pub struct RepeatedTemplate {
    #[prost(message, optional, tag = "1")]
    pub source: Option<Reference>,
    /// `None` copies each element as it is.
    #[prost(message, optional, tag = "2")]
    pub item: Option<MessageTemplate>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Literal {
    #[prost(oneof = "LiteralKind", tags = "1, 2, 3, 4, 5, 6")]
    pub kind: Option<LiteralKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum LiteralKind {
    #[prost(string, tag = "1")]
    String(String),
    #[prost(sint64, tag = "2")]
    Int(i64),
    #[prost(uint64, tag = "3")]
    Uint(u64),
    #[prost(double, tag = "4")]
    Double(f64),
    #[prost(bool, tag = "5")]
    Bool(bool),
    /// An empty message or list: the proto3 default of a message or repeated field.
    #[prost(enumeration = "Empty", tag = "6")]
    Empty(i32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Empty {
    Message = 0,
    List = 1,
}

#[derive(Clone, PartialEq, Message)]
pub struct Interpolation {
    #[prost(message, repeated, tag = "1")]
    pub parts: Vec<Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Property {
    Request = 0,
    Response = 1,
    Header = 2,
    Params = 3,
    Error = 4,
}

/// `{{ resource.property:path }}`, resolved: which slot, which property, which fields.
#[derive(Clone, PartialEq, Message)]
pub struct Reference {
    /// 0 is the flow input; n + 1 is node n of the flow; `ERROR_SLOT` and `ITEM_SLOT` as named.
    #[prost(uint32, tag = "1")]
    pub slot: u32,
    #[prost(enumeration = "Property", tag = "2")]
    pub property: i32,
    /// Field names from the root of the property; empty for the whole message. For `Header` the
    /// single element is the lower-cased header name.
    #[prost(string, repeated, tag = "3")]
    pub path: Vec<String>,
    /// What the reference reads when its value is absent: its type's proto3 default, set where
    /// the value is formatted into text (`sprintf` arguments, text with templates), so that an
    /// absent integer prints `0`, not nothing.
    #[prost(message, optional, tag = "4")]
    pub absent: Option<Literal>,
}

pub const INPUT_SLOT: u32 = 0;
/// `{{ error:message }}`, `{{ error.params:trace }}`: the failure being handled.
pub const ERROR_SLOT: u32 = u32::MAX;
/// Inside a `repeated` block: the element being built from.
pub const ITEM_SLOT: u32 = u32::MAX - 1;

#[cfg(test)]
mod tests {
    use super::*;

    fn reference_to_id() -> Value {
        Value {
            kind: Some(ValueKind::Reference(Reference {
                slot: INPUT_SLOT,
                property: Property::Request as i32,
                path: vec!["id".into()],
                absent: None,
            })),
        }
    }

    fn sample() -> Plan {
        let reference = Value {
            kind: Some(ValueKind::Reference(Reference {
                slot: INPUT_SLOT,
                property: Property::Request as i32,
                path: vec!["id".into()],
                absent: Some(Literal { kind: Some(LiteralKind::Empty(Empty::List as i32)) }),
            })),
        };
        Plan {
            services: vec![Service {
                name: "proto.Users".into(),
                cluster: "127.0.0.1:9090".into(),
                authority: "127.0.0.1:9090".into(),
                transport: Transport::Http as i32,
                request_codec: Codec::Json as i32,
                response_codec: Codec::Json as i32,
                base_path: String::new(),
                tls: false,
                int64_as_string: false,
            }],
            messages: vec![MessageLayout {
                name: "proto.Query".into(),
                fields: vec![FieldLayout {
                    name: "id".into(),
                    json_name: "id".into(),
                    number: 1,
                    kind: Kind::String as i32,
                    ..Default::default()
                }],
            }],
            endpoints: vec![Endpoint {
                method: "GET".into(),
                path: vec![
                    PathSegment { segment: Some(Segment::Literal("user".into())) },
                    PathSegment { segment: Some(Segment::Param("id".into())) },
                ],
                flow: 0,
                status: 200,
                route: "/user/:id".into(),
                ..Default::default()
            }],
            flows: vec![Flow {
                name: "GetUser".into(),
                nodes: vec![Node {
                    name: "user".into(),
                    depends_on: vec![],
                    call: Some(Call {
                        method: "Get".into(),
                        http_method: "GET".into(),
                        request: Some(MessageTemplate {
                            fields: vec![FieldTemplate {
                                field: 0,
                                value: Some(reference.clone()),
                                typed: false,
                            }],
                        }),
                        params: vec![NamedValue { name: "id".into(), value: Some(reference) }],
                        timeout_ms: 10_000,
                        ..Default::default()
                    }),
                    condition: Some(Value {
                        kind: Some(ValueKind::Binary(Box::new(Binary {
                            op: BinaryOp::Eq as i32,
                            left: Some(reference_to_id()),
                            right: Some(Value {
                                kind: Some(ValueKind::Literal(Literal {
                                    kind: Some(LiteralKind::String("1".into())),
                                })),
                            }),
                        }))),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            log_level: "debug".into(),
            reflection: Some(Reflection {
                list_services: vec![10, 3, 10, 1, b'S'],
                files: vec![DescriptorFile {
                    name: "s.proto".into(),
                    descriptor: vec![10, 7],
                    imports: vec![1],
                    symbols: vec!["S".into(), "S.M".into()],
                }],
            }),
            graphql: Some(Graphql {
                objects: vec![GraphqlObject {
                    name: "Query".into(),
                    fields: vec![GraphqlField {
                        name: "user".into(),
                        object: Some(0),
                        source: Some(GraphqlSource::Flow(0)),
                    }],
                }],
                query: 0,
                mutation: None,
                introspection: b"{}".to_vec(),
                max_depth: 15,
                max_fields: 500,
                max_flows: 50,
                own_listener: true,
            }),
        }
    }

    #[test]
    fn round_trips() {
        let plan = sample();
        let bytes = plan.encode_to_bytes();
        assert_eq!(&bytes[..4], b"SMPH");
        assert_eq!(&bytes[4..6], &VERSION.to_le_bytes());
        assert_eq!(Plan::decode_from_bytes(&bytes), Ok(plan));
    }

    #[test]
    fn empty_plan_round_trips() {
        let bytes = Plan::default().encode_to_bytes();
        assert_eq!(bytes.len(), HEADER_LEN);
        assert_eq!(Plan::decode_from_bytes(&bytes), Ok(Plan::default()));
    }

    #[test]
    fn refuses_another_version() {
        let mut bytes = sample().encode_to_bytes();
        bytes[4] = 1;
        let err = Plan::decode_from_bytes(&bytes).unwrap_err();
        assert_eq!(err, DecodeError::UnsupportedVersion(1));
        assert!(err.to_string().contains("version 1 is not supported"));
    }

    #[test]
    fn refuses_bad_magic_and_short_input() {
        assert_eq!(Plan::decode_from_bytes(b"{\"plan\":1}"), Err(DecodeError::BadMagic));
        assert_eq!(Plan::decode_from_bytes(b"SMPH"), Err(DecodeError::TooShort(4)));
    }

    #[test]
    fn refuses_enum_values_it_does_not_know() {
        let mut plan = sample();
        if let Some(Node { condition: Some(Value { kind: Some(ValueKind::Binary(binary)) }), .. }) =
            plan.flows.first_mut().and_then(|flow| flow.nodes.first_mut())
        {
            binary.op = 99;
        }
        let refused = Plan::decode_from_bytes(&plan.encode_to_bytes());
        assert_eq!(
            refused,
            Err(DecodeError::Malformed("unknown operator 99 (from a newer compiler?)".into()))
        );

        let mut plan = sample();
        if let Some(service) = plan.services.first_mut() {
            service.transport = 7;
        }
        let refused = Plan::decode_from_bytes(&plan.encode_to_bytes());
        assert_eq!(
            refused,
            Err(DecodeError::Malformed("unknown transport 7 (from a newer compiler?)".into()))
        );
    }

    #[test]
    fn refuses_truncated_body() {
        let bytes = sample().encode_to_bytes();
        let truncated = &bytes[..bytes.len() - 3];
        assert!(matches!(Plan::decode_from_bytes(truncated), Err(DecodeError::Malformed(_))));
    }
}
