//! Upstream services: where a call goes, over what, in which codec; and the routes and paths
//! that address them.

use semaphore_plan as plan;

use crate::config::{Literal, Spanned};
use crate::diagnostics::{Reporter, Span};
use crate::schema::{MethodInfo, ServiceInfo, Setting};
use crate::ClusterNaming;

/// What a service is to the filter.
pub enum Resolution {
    Ready(plan::Service),
    /// Its transport or codec is one the filter cannot speak: reported as a warning, and the
    /// flows calling it are left out of the plan rather than failing the configuration.
    Unservable,
    /// Its settings are wrong: reported as an error.
    Invalid,
}

/// The plan's view of a service: transport, codecs and the cluster that reaches its host.
pub fn resolve(
    info: &ServiceInfo,
    naming: &ClusterNaming,
    used_at: &Span,
    reporter: &mut Reporter,
) -> Resolution {
    let name = &info.name;
    let span_of = |setting: &Setting| setting.span.clone().unwrap_or_else(|| used_at.clone());
    let Some(transport) = transport(info, &span_of(&info.transport), reporter) else {
        return Resolution::Unservable;
    };
    let default_codec =
        if transport == plan::Transport::Grpc { plan::Codec::Proto } else { plan::Codec::Json };
    let Some(int64_as_string) = int64_as_string(&info.int64_as_string, reporter) else {
        return Resolution::Invalid;
    };
    let mut codec_of = |setting: &Setting| -> Option<plan::Codec> {
        let setting = if setting.value.is_empty() { &info.codec } else { setting };
        let value = if setting.value.is_empty() { default_codec.name() } else { setting.value.as_str() };
        let parsed = plan::Codec::from_name(value);
        if parsed.is_none() {
            reporter
                .warning(&span_of(setting), format!("codec `{value}` of service `{name}` cannot be served"))
                .label("the flows calling this service are left out")
                .suggest(value, codec_names(), Some(codecs_hint()));
        }
        parsed
    };
    // One at a time: both directions usually read the same `codec`, which is reported once.
    let Some(request_codec) = codec_of(&info.request_codec) else { return Resolution::Unservable };
    let Some(response_codec) = codec_of(&info.response_codec) else { return Resolution::Unservable };
    let Some(upstream) = parse_host(&info.host.value) else {
        let pattern =
            name.rsplit_once('.').map(|(pkg, _)| format!("{pkg}.*")).unwrap_or_else(|| name.clone());
        reporter
            .error(
                &span_of(&info.host),
                if info.host.value.is_empty() {
                    format!("service `{name}` has no host")
                } else {
                    format!("service `{name}` has no usable host: `{}`", info.host.value)
                },
            )
            .label("used here")
            .note(format!(
                "set `host` in the service's `semaphore.api.service` option, or in `services {{ select \"{pattern}\" {{ host = \"http://127.0.0.1:8080\" }} }}`"
            ));
        return Resolution::Invalid;
    };
    let cluster = match (&info.cluster.value, naming) {
        (named, _) if !named.is_empty() => named.clone(),
        (_, ClusterNaming::HostPort) => upstream.cluster_name(),
        (_, ClusterNaming::Istio { namespace }) => upstream.istio_cluster_name(namespace),
    };
    Resolution::Ready(plan::Service {
        name: name.clone(),
        cluster,
        authority: upstream.authority(),
        transport: transport as i32,
        request_codec: request_codec as i32,
        response_codec: response_codec as i32,
        base_path: upstream.base_path,
        tls: upstream.tls,
        int64_as_string,
    })
}

/// A service's `transport`, HTTP unless it says otherwise; one the filter cannot speak is
/// reported as a warning.
fn transport(info: &ServiceInfo, span: &Span, reporter: &mut Reporter) -> Option<plan::Transport> {
    let value = info.transport.value.as_str();
    if value.is_empty() {
        return Some(plan::Transport::Http);
    }
    let transport = plan::Transport::from_name(value);
    if transport.is_none() {
        let names = plan::Transport::ALL.map(plan::Transport::name);
        reporter
            .warning(
                span,
                format!("transport `{value}` of service `{}` cannot be served inside Envoy", info.name),
            )
            .label("the flows calling this service are left out")
            .suggest(value, names, Some(format!("the transports are {}", quoted_list(&names))));
    }
    transport
}

/// `int64_as_string = true|false` of an endpoint or a service; absent is false, anything but a
/// bool is reported.
pub fn int64_as_string(setting: &Option<Spanned<Literal>>, reporter: &mut Reporter) -> Option<bool> {
    match setting {
        None => Some(false),
        Some(Spanned { value: Literal::Bool(b), .. }) => Some(*b),
        Some(other) => {
            reporter.error(&other.span, "`int64_as_string` is true or false").label("not a bool");
            None
        }
    }
}

/// The codecs' names, for hints.
pub fn codec_names() -> [&'static str; plan::Codec::ALL.len()] {
    plan::Codec::ALL.map(plan::Codec::name)
}

pub fn codecs_hint() -> String {
    format!("the codecs are {}", quoted_list(&codec_names()))
}

/// `"a", "b" and "c"`.
fn quoted_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("{name:?}")).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

pub fn parse_duration_ms(text: &str) -> Option<u32> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number.trim().parse().ok()?;
    let ms = value * scale;
    (ms.is_finite() && ms >= 0.0 && ms <= f64::from(u32::MAX)).then_some(ms as u32)
}

/// `/user/:id/*rest` into segments; empty segments (double or trailing slashes) are dropped.
pub fn parse_path(route: &str) -> Vec<plan::PathSegment> {
    let path = route.split('?').next().unwrap_or("");
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let segment = if let Some(name) = s.strip_prefix(':') {
                plan::Segment::Param(name.to_string())
            } else if let Some(name) = s.strip_prefix('*') {
                plan::Segment::Wildcard(name.to_string())
            } else {
                plan::Segment::Literal(s.to_string())
            };
            plan::PathSegment { segment: Some(segment) }
        })
        .collect()
}

/// A service host split into what the Envoy cluster and the callouts need.
pub struct Upstream {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub base_path: String,
}

impl Upstream {
    pub fn authority(&self) -> String {
        let default_port = if self.tls { 443 } else { 80 };
        if self.port == default_port {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub fn cluster_name(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Istio's outbound cluster for the host: `outbound|<port>||<fqdn>`. A short Kubernetes
    /// name (`users`, or `users.shop.svc` for another namespace) is completed to
    /// `<name>.<namespace>.svc.cluster.local`; any other name is taken as it is, as `users.shop`
    /// could as well be a domain.
    pub fn istio_cluster_name(&self, namespace: &str) -> String {
        let labels: Vec<&str> = self.host.split('.').collect();
        let fqdn = match labels.as_slice() {
            [name] => format!("{name}.{namespace}.svc.cluster.local"),
            [name, ns, "svc"] => format!("{name}.{ns}.svc.cluster.local"),
            _ => self.host.clone(),
        };
        format!("outbound|{}||{fqdn}", self.port)
    }
}

pub fn parse_host(host: &str) -> Option<Upstream> {
    let host = host.trim();
    let (tls, rest) = if let Some(rest) = host.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = host.strip_prefix("http://") {
        (false, rest)
    } else {
        (false, host)
    };
    let (authority, base) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    // `:8080` (all interfaces, as daemon configs write it) means this host.
    let authority =
        if authority.starts_with(':') { format!("127.0.0.1{authority}") } else { authority.to_string() };
    let (name, port) = match authority.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(']') || name.starts_with('[') => {
            (name.to_string(), port.parse().ok()?)
        }
        _ => (authority.clone(), if tls { 443 } else { 80 }),
    };
    if name.is_empty() {
        return None;
    }
    Some(Upstream { tls, host: name, port, base_path: base.trim_end_matches('/').to_string() })
}

/// gRPC addresses a method as `POST /package.Service/Method`.
pub(super) fn grpc_route(method: &MethodInfo) -> (String, Vec<plan::PathSegment>) {
    let (service_name, method_name) = method.full_name.rsplit_once('.').unwrap_or(("", &method.name));
    let segment = |text: &str| plan::PathSegment { segment: Some(plan::Segment::Literal(text.to_string())) };
    ("POST".to_string(), vec![segment(service_name), segment(method_name)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let u = parse_host("http://127.0.0.1:9090").unwrap();
        assert_eq!(
            (u.authority(), u.cluster_name(), u.base_path.as_str()),
            ("127.0.0.1:9090".into(), "127.0.0.1:9090".into(), "")
        );
        let u = parse_host("https://jsonplaceholder.typicode.com/api/").unwrap();
        assert!(u.tls);
        assert_eq!(u.authority(), "jsonplaceholder.typicode.com");
        assert_eq!(u.cluster_name(), "jsonplaceholder.typicode.com:443");
        assert_eq!(u.base_path, "/api");
        let u = parse_host("users.svc:8080").unwrap();
        assert_eq!(u.authority(), "users.svc:8080");
        assert!(parse_host("").is_none());
        assert!(parse_host("http://host:notaport").is_none());
    }

    #[test]
    fn istio_cluster_names() {
        let istio = |host: &str| parse_host(host).unwrap().istio_cluster_name("shop");
        assert_eq!(istio("http://users:9090"), "outbound|9090||users.shop.svc.cluster.local");
        assert_eq!(istio("http://users"), "outbound|80||users.shop.svc.cluster.local");
        assert_eq!(istio("https://users"), "outbound|443||users.shop.svc.cluster.local");
        assert_eq!(istio("http://users.billing.svc:8080"), "outbound|8080||users.billing.svc.cluster.local");
        assert_eq!(
            istio("http://users.billing.svc.cluster.local:8080"),
            "outbound|8080||users.billing.svc.cluster.local"
        );
        assert_eq!(istio("https://api.example.com"), "outbound|443||api.example.com");
        assert_eq!(istio("https://example.com"), "outbound|443||example.com");
    }

    #[test]
    fn hints_list_the_names_as_written() {
        assert_eq!(codecs_hint(), "the codecs are \"json\", \"proto\", \"form-urlencoded\" and \"xml\"");
        assert_eq!(quoted_list(&["http", "grpc"]), "\"http\" and \"grpc\"");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("500ms"), Some(500));
        assert_eq!(parse_duration_ms("1.5s"), Some(1500));
        assert_eq!(parse_duration_ms("2m"), Some(120_000));
        assert_eq!(parse_duration_ms("soon"), None);
    }

    #[test]
    fn paths() {
        let segments = parse_path("/files/:dir/*rest");
        assert_eq!(segments.len(), 3);
        assert_eq!(segments[1].segment, Some(plan::Segment::Param("dir".into())));
        assert_eq!(segments[2].segment, Some(plan::Segment::Wildcard("rest".into())));
        assert!(parse_path("/").is_empty());
    }
}
