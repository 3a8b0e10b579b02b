//! The SSRF guard: an endpoint URL may only lead to the public internet.
//!
//! A partner chooses the URL, so a URL is untrusted input that the dispatcher will POST to from
//! inside the account. It must be `https` (a local-development switch allows `http` to
//! loopback), carry no credentials, and every address its host resolves to must be public:
//! loopback, private (RFC 1918), carrier-grade NAT, link-local (169.254.0.0/16, where the
//! instance metadata service answers), unspecified, multicast, broadcast, reserved, unique-local
//! and the IPv4-mapped or NAT64 forms of those are refused. The check runs at registration, for
//! a clear error, and again at every connection, on the addresses the connection then uses
//! ([`GuardedResolver`]), so a name that changes its answer (DNS rebinding) cannot slip through.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use async_trait::async_trait;
use http::Uri;
use thiserror::Error;

/// The longest endpoint URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// What the guard lets through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Local development only: allow `http`, loopback addresses and any port, so a receiver
    /// on the developer's machine gets deliveries. Never set in a deployed stack.
    pub allow_loopback: bool,
    /// Ports below 1024 allowed besides 443 (`EgressAllowedPorts`): the well-known ports of
    /// other services are refused unless the operator opens one.
    pub low_ports: LowPorts,
}

impl EgressPolicy {
    /// The deployed policy: public https only, on 443 or a port from 1024.
    pub const PUBLIC: Self = Self {
        allow_loopback: false,
        low_ports: LowPorts::NONE,
    };

    /// The local-development policy: also http, loopback and every port.
    pub const LOCAL_DEVELOPMENT: Self = Self {
        allow_loopback: true,
        low_ports: LowPorts::NONE,
    };

    /// Whether a connection to `port` is allowed.
    pub fn allows_port(&self, port: u16) -> bool {
        port >= 1024 || port == 443 || self.allow_loopback || self.low_ports.contains(port)
    }
}

/// A set of ports below 1024.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LowPorts([u64; 16]);

impl LowPorts {
    pub const NONE: Self = Self([0; 16]);

    /// Parse a comma-separated list (`"80,8443"` is refused: 8443 needs no opening).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut ports = Self::NONE;
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let port: u16 = part
                .parse()
                .map_err(|_| format!("{part:?} is not a port number"))?;
            if port == 0 || port >= 1024 {
                return Err(format!("{port} is not a port below 1024"));
            }
            ports.0[usize::from(port / 64)] |= 1 << (port % 64);
        }
        Ok(ports)
    }

    pub fn contains(&self, port: u16) -> bool {
        port < 1024 && self.0[usize::from(port / 64)] & (1 << (port % 64)) != 0
    }
}

/// Why a URL or an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refused {
    #[error("the URL is not a valid absolute URL")]
    InvalidUrl,
    #[error("the URL is longer than {MAX_URL_LEN} characters")]
    TooLong,
    #[error("the URL must use https")]
    NotHttps,
    #[error("the URL must not carry a user name or password")]
    Credentials,
    #[error("the URL has no host")]
    NoHost,
    #[error("port {0} is refused: only 443 and ports from 1024 are allowed")]
    Port(u16),
    #[error("{host} resolves to {address}, a {class} address")]
    Address {
        host: String,
        address: IpAddr,
        class: AddressClass,
    },
    #[error("{host} does not resolve: {reason}")]
    Unresolvable { host: String, reason: String },
}

impl Refused {
    /// Whether the refusal is about where the URL leads (the SSRF guard proper) rather than
    /// its spelling or a failed lookup.
    pub fn is_forbidden_address(&self) -> bool {
        matches!(self, Self::Address { .. })
    }
}

/// The kinds of address an endpoint may not reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Loopback,
    Private,
    CarrierGradeNat,
    LinkLocal,
    Unspecified,
    Multicast,
    Broadcast,
    Reserved,
    UniqueLocal,
    /// Documentation ranges: never a real endpoint.
    Documentation,
    /// 6to4 and Teredo: relays to IPv4 addresses the guard cannot see.
    Tunnel,
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::CarrierGradeNat => "carrier-grade NAT",
            Self::LinkLocal => "link-local",
            Self::Unspecified => "unspecified",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Reserved => "reserved",
            Self::UniqueLocal => "unique-local",
            Self::Documentation => "documentation",
            Self::Tunnel => "tunnel",
        })
    }
}

/// The class of a non-public address, `None` for a public one.
pub fn classify(address: IpAddr) -> Option<AddressClass> {
    match address {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    let [a, b, ..] = ip.octets();
    Some(match (a, b) {
        _ if ip.is_loopback() => AddressClass::Loopback,
        _ if ip.is_broadcast() => AddressClass::Broadcast,
        // 0.0.0.0/8: "this network"; connecting to it reaches the host itself.
        (0, _) => AddressClass::Unspecified,
        _ if ip.is_private() => AddressClass::Private,
        (100, 64..=127) => AddressClass::CarrierGradeNat,
        _ if ip.is_link_local() => AddressClass::LinkLocal,
        _ if ip.is_multicast() => AddressClass::Multicast,
        // 240.0.0.0/4, and 192.0.0.0/24 (protocol assignments), 198.18.0.0/15 (benchmarking).
        (240..=255, _) | (198, 18 | 19) => AddressClass::Reserved,
        (192, 0) if ip.octets()[2] == 0 => AddressClass::Reserved,
        // TEST-NET-1, -2 and -3.
        (192, 0) if ip.octets()[2] == 2 => AddressClass::Documentation,
        (198, 51) if ip.octets()[2] == 100 => AddressClass::Documentation,
        (203, 0) if ip.octets()[2] == 113 => AddressClass::Documentation,
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    // An IPv4 address in IPv6 clothing is judged as the IPv4 address it reaches.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) translates to the embedded IPv4 address.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., hi, lo] = segments;
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        return classify_v4(Ipv4Addr::new(a, b, c, d));
    }
    Some(match segments[0] {
        // 2002::/16 (6to4) and 2001::/32 (Teredo) tunnel to IPv4 addresses.
        0x2002 => AddressClass::Tunnel,
        0x2001 if segments[1] == 0 => AddressClass::Tunnel,
        // 2001:db8::/32 and 3fff::/20.
        0x2001 if segments[1] == 0x0db8 => AddressClass::Documentation,
        s if s & 0xfff0 == 0x3ff0 => AddressClass::Documentation,
        // 64:ff9b:1::/48, local-use NAT64: it may translate to any IPv4 address.
        0x64 if segments[1] == 0xff9b && segments[2] == 1 => AddressClass::Reserved,
        _ if ip.is_loopback() => AddressClass::Loopback,
        _ if ip.is_unspecified() => AddressClass::Unspecified,
        s if s & 0xfe00 == 0xfc00 => AddressClass::UniqueLocal,
        s if s & 0xffc0 == 0xfe80 => AddressClass::LinkLocal,
        // Deprecated site-local (fec0::/10) routes like unique-local.
        s if s & 0xffc0 == 0xfec0 => AddressClass::UniqueLocal,
        _ if ip.is_multicast() => AddressClass::Multicast,
        // The deprecated IPv4-compatible form (::a.b.c.d).
        0 if segments[..6] == [0; 6] => AddressClass::Reserved,
        _ => return None,
    })
}

/// An endpoint URL that passed the static checks: absolute, http(s), no credentials, a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl {
    uri: Uri,
}

impl EndpointUrl {
    /// Parse `raw` and apply the checks that need no lookup: scheme, credentials, and an
    /// address literal's class.
    pub fn parse(raw: &str, policy: EgressPolicy) -> Result<Self, Refused> {
        let raw = raw.trim();
        if raw.len() > MAX_URL_LEN {
            return Err(Refused::TooLong);
        }
        let uri: Uri = raw.parse().map_err(|_| Refused::InvalidUrl)?;
        let authority = uri.authority().ok_or(Refused::InvalidUrl)?;
        if authority.as_str().contains('@') {
            return Err(Refused::Credentials);
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(Refused::NoHost);
        }
        let url = Self { uri: uri.clone() };
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if policy.allow_loopback => {}
            Some("http") => return Err(Refused::NotHttps),
            _ => return Err(Refused::InvalidUrl),
        }
        url.check_literal(policy)?;
        Ok(url)
    }

    /// The checks that need no lookup and hold at connect time too: the port, and an address
    /// literal's class (the connector dials a literal without resolving it).
    pub fn check_literal(&self, policy: EgressPolicy) -> Result<(), Refused> {
        if !policy.allows_port(self.port()) {
            return Err(Refused::Port(self.port()));
        }
        match self.literal_address() {
            Some(ip) => check_address(self.host(), ip, policy),
            None => Ok(()),
        }
    }

    pub fn as_str(&self) -> String {
        self.uri.to_string()
    }

    /// The URL as logs and attempt records show it: the query string (where partners put
    /// tokens) replaced by `?…`. User-info never gets this far ([`Refused::Credentials`]); a
    /// token in a path segment is the partner's choice (SECURITY.md).
    pub fn redacted(&self) -> String {
        let scheme = self.uri.scheme_str().unwrap_or("https");
        let authority = self.uri.authority().map(|a| a.as_str()).unwrap_or_default();
        let path = self.uri.path();
        let query = if self.uri.query().is_some() {
            "?…"
        } else {
            ""
        };
        format!("{scheme}://{authority}{path}{query}")
    }

    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The host, without IPv6 brackets.
    pub fn host(&self) -> &str {
        let host = self.uri.host().unwrap_or_default();
        host.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
    }

    pub fn port(&self) -> u16 {
        self.uri
            .port_u16()
            .unwrap_or(if self.is_https() { 443 } else { 80 })
    }

    pub fn is_https(&self) -> bool {
        self.uri.scheme_str() == Some("https")
    }

    fn literal_address(&self) -> Option<IpAddr> {
        self.host().parse().ok()
    }
}

impl fmt::Display for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.uri.fmt(f)
    }
}

/// Refuse `address` unless the policy lets it through.
pub fn check_address(host: &str, address: IpAddr, policy: EgressPolicy) -> Result<(), Refused> {
    match classify(address) {
        None => Ok(()),
        Some(AddressClass::Loopback) if policy.allow_loopback => Ok(()),
        Some(class) => Err(Refused::Address {
            host: host.to_owned(),
            address,
            class,
        }),
    }
}

/// Name resolution, behind a trait so tests can make a name resolve anywhere.
#[async_trait]
pub trait Resolver: Send + Sync + fmt::Debug {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>>;
}

/// The system's resolver.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

#[async_trait]
impl Resolver for SystemResolver {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }
}

/// Resolve `host` and keep its addresses only if every one is allowed: a name with one public
/// and one private address is refused whole, since the connection could take either.
pub async fn resolve_checked(
    resolver: &dyn Resolver,
    host: &str,
    port: u16,
    policy: EgressPolicy,
) -> Result<Vec<SocketAddr>, Refused> {
    let addresses = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => resolver
            .resolve(host, port)
            .await
            .map_err(|e| Refused::Unresolvable {
                host: host.to_owned(),
                reason: e.to_string(),
            })?,
    };
    if addresses.is_empty() {
        return Err(Refused::Unresolvable {
            host: host.to_owned(),
            reason: "no addresses".into(),
        });
    }
    for address in &addresses {
        check_address(host, address.ip(), policy)?;
    }
    Ok(addresses)
}

/// The full registration check: the static checks, then the host's current addresses.
pub async fn check_url(
    raw: &str,
    resolver: &dyn Resolver,
    policy: EgressPolicy,
) -> Result<EndpointUrl, Refused> {
    let url = EndpointUrl::parse(raw, policy)?;
    let addresses = resolve_checked(resolver, url.host(), url.port(), policy).await?;
    if !url.is_https() {
        only_loopback(&addresses)?;
    }
    Ok(url)
}

/// http is allowed to loopback only (local development): every address must be loopback.
fn only_loopback(addresses: &[SocketAddr]) -> Result<(), Refused> {
    if addresses
        .iter()
        .all(|a| classify(a.ip()) == Some(AddressClass::Loopback))
    {
        Ok(())
    } else {
        Err(Refused::NotHttps)
    }
}

/// Fixed answers for tests: `name → addresses`, everything else unresolvable.
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug, Default, Clone)]
pub struct StaticResolver(pub std::collections::HashMap<String, Vec<IpAddr>>);

#[cfg(any(test, feature = "test-util"))]
impl StaticResolver {
    pub fn with(mut self, name: &str, addresses: &[IpAddr]) -> Self {
        self.0.insert(name.to_owned(), addresses.to_vec());
        self
    }
}

#[cfg(any(test, feature = "test-util"))]
#[async_trait]
impl Resolver for StaticResolver {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        self.0
            .get(host)
            .map(|ips| ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "unknown name"))
    }
}

/// The resolver the dispatcher's HTTP connector uses: it resolves, checks every address, and
/// hands the connector only the checked addresses, so the connection goes where the check
/// looked. A refusal travels as the connect error's source, where [`refusal_in`] finds it.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub resolver: Arc<dyn Resolver>,
    pub policy: EgressPolicy,
    /// For the plain-http client: every address must be loopback.
    pub loopback_only: bool,
}

impl tower_service::Service<hyper_util::client::legacy::connect::dns::Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            // The connector sets each address's port itself; 0 here is never used.
            let checked = resolve_checked(&*this.resolver, name.as_str(), 0, this.policy)
                .await
                .map_err(|refused| Box::new(refused) as Self::Error)?;
            if this.loopback_only {
                only_loopback(&checked).map_err(|refused| Box::new(refused) as Self::Error)?;
            }
            Ok(checked.into_iter())
        })
    }
}

/// The guard's refusal among `error`'s causes, if that is why a connection failed.
pub fn refusal_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Some(refused);
        }
        cause = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn internal_addresses_are_classified() {
        for (address, class) in [
            ("127.0.0.1", AddressClass::Loopback),
            ("127.255.0.9", AddressClass::Loopback),
            ("10.1.2.3", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("192.168.1.1", AddressClass::Private),
            ("100.64.0.1", AddressClass::CarrierGradeNat),
            ("100.127.255.254", AddressClass::CarrierGradeNat),
            ("169.254.169.254", AddressClass::LinkLocal),
            ("0.0.0.0", AddressClass::Unspecified),
            ("0.1.2.3", AddressClass::Unspecified),
            ("224.0.0.1", AddressClass::Multicast),
            ("255.255.255.255", AddressClass::Broadcast),
            ("240.0.0.1", AddressClass::Reserved),
            ("::1", AddressClass::Loopback),
            ("::", AddressClass::Unspecified),
            ("fd00::1", AddressClass::UniqueLocal),
            ("fe80::1", AddressClass::LinkLocal),
            ("ff02::1", AddressClass::Multicast),
            ("::ffff:169.254.169.254", AddressClass::LinkLocal),
            ("::ffff:10.0.0.1", AddressClass::Private),
            ("64:ff9b::a9fe:a9fe", AddressClass::LinkLocal),
            ("::127.0.0.1", AddressClass::Reserved),
            ("192.0.2.10", AddressClass::Documentation),
            ("198.51.100.7", AddressClass::Documentation),
            ("203.0.113.200", AddressClass::Documentation),
            ("2001:db8::1", AddressClass::Documentation),
            ("3fff:1::1", AddressClass::Documentation),
            ("2002:a9fe:a9fe::1", AddressClass::Tunnel),
            ("2001:0:4136:e378::1", AddressClass::Tunnel),
            ("64:ff9b:1::a00:1", AddressClass::Reserved),
        ] {
            assert_eq!(classify(ip(address)), Some(class), "{address}");
        }
        for public in [
            "93.184.216.34",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
        ] {
            assert_eq!(classify(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn a_redacted_url_keeps_no_query_string() {
        let url = |raw: &str| EndpointUrl::parse(raw, EgressPolicy::PUBLIC).expect("url");
        assert_eq!(
            url("https://a.example:8443/in/hooks?token=s3cret&x=1").redacted(),
            "https://a.example:8443/in/hooks?…"
        );
        assert_eq!(
            url("https://a.example/in").redacted(),
            "https://a.example/in"
        );
        assert_eq!(url("https://a.example").redacted(), "https://a.example/");
    }

    #[test]
    fn ports_below_1024_other_than_443_are_refused_unless_opened() {
        let public = EgressPolicy::PUBLIC;
        assert!(EndpointUrl::parse("https://a.example/in", public).is_ok());
        assert!(EndpointUrl::parse("https://a.example:8443/in", public).is_ok());
        for raw in [
            "https://a.example:22/",
            "https://a.example:25/",
            "https://a.example:80/",
        ] {
            assert!(
                matches!(EndpointUrl::parse(raw, public), Err(Refused::Port(_))),
                "{raw}"
            );
        }
        let opened = EgressPolicy {
            low_ports: LowPorts::parse("80, 992").expect("ports"),
            ..public
        };
        assert!(EndpointUrl::parse("https://a.example:992/", opened).is_ok());
        assert!(EndpointUrl::parse("https://a.example:25/", opened).is_err());
        assert!(LowPorts::parse("8443").is_err());
        assert!(LowPorts::parse("0").is_err());
        assert!(LowPorts::parse("http").is_err());
        assert_eq!(LowPorts::parse(""), Ok(LowPorts::NONE));
        // Local development reaches any port on this machine.
        assert!(
            EndpointUrl::parse("http://127.0.0.1:80/", EgressPolicy::LOCAL_DEVELOPMENT).is_ok()
        );
    }

    #[test]
    fn urls_must_be_https_without_credentials() {
        let public = EgressPolicy::PUBLIC;
        assert!(EndpointUrl::parse("https://hooks.example.com/in?x=1", public).is_ok());
        for (raw, refused) in [
            ("http://hooks.example.com/", Refused::NotHttps),
            ("https://user:pw@hooks.example.com/", Refused::Credentials),
            ("ftp://hooks.example.com/", Refused::InvalidUrl),
            ("hooks.example.com/in", Refused::InvalidUrl),
            ("not a url", Refused::InvalidUrl),
        ] {
            assert_eq!(EndpointUrl::parse(raw, public), Err(refused), "{raw}");
        }
        assert_eq!(
            EndpointUrl::parse(
                &format!("https://a.example/{}", "p".repeat(MAX_URL_LEN)),
                public
            ),
            Err(Refused::TooLong)
        );
        assert!(matches!(
            EndpointUrl::parse("https://169.254.169.254/latest/meta-data", public),
            Err(Refused::Address {
                class: AddressClass::LinkLocal,
                ..
            })
        ));
        assert!(matches!(
            EndpointUrl::parse("https://[::ffff:127.0.0.1]/", public),
            Err(Refused::Address {
                class: AddressClass::Loopback,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn names_are_judged_by_every_address_they_resolve_to() {
        let resolver = StaticResolver::default()
            .with("public.example", &[ip("93.184.216.34")])
            .with("local.example", &[ip("127.0.0.1")])
            .with("metadata.example", &[ip("169.254.169.254")])
            .with("mixed.example", &[ip("93.184.216.34"), ip("10.0.0.1")]);
        let public = EgressPolicy::PUBLIC;
        assert!(
            check_url("https://public.example/", &resolver, public)
                .await
                .is_ok()
        );
        for (host, class) in [
            ("local.example", AddressClass::Loopback),
            ("metadata.example", AddressClass::LinkLocal),
            ("mixed.example", AddressClass::Private),
        ] {
            let refused = check_url(&format!("https://{host}/"), &resolver, public).await;
            assert!(
                matches!(&refused, Err(Refused::Address { class: c, .. }) if *c == class),
                "{host}: {refused:?}"
            );
        }
        assert!(matches!(
            check_url("https://nowhere.example/", &resolver, public).await,
            Err(Refused::Unresolvable { .. })
        ));
    }

    #[tokio::test]
    async fn local_development_allows_http_to_loopback_only() {
        let resolver = StaticResolver::default()
            .with("local.example", &[ip("127.0.0.1")])
            .with("public.example", &[ip("93.184.216.34")])
            .with("metadata.example", &[ip("169.254.169.254")]);
        let local = EgressPolicy::LOCAL_DEVELOPMENT;
        assert!(
            check_url("http://127.0.0.1:9000/in", &resolver, local)
                .await
                .is_ok()
        );
        assert!(
            check_url("http://local.example:9000/", &resolver, local)
                .await
                .is_ok()
        );
        assert_eq!(
            check_url("http://public.example/", &resolver, local).await,
            Err(Refused::NotHttps)
        );
        assert!(matches!(
            check_url("https://metadata.example/", &resolver, local).await,
            Err(Refused::Address { .. })
        ));
    }

    #[test]
    fn a_refusal_is_found_among_causes() {
        #[derive(Debug, Error)]
        #[error("connect failed")]
        struct Wrapper(#[source] Box<dyn std::error::Error + Send + Sync>);
        let refused = Refused::NotHttps;
        let wrapped = Wrapper(Box::new(refused.clone()));
        assert_eq!(refusal_in(&wrapped), Some(&refused));
        assert_eq!(refusal_in(&Wrapper("other".into())), None);
    }
}
