//! The SSRF-safe fetch of a client's metadata document (MCP 2025-11-25
//! `basic/authorization.mdx` lines 235-240, 2026-07-28 `basic/authorization/security-considerations.mdx`
//! lines 88-91, SEP-991 `seps/991-enable-url-based-client-registration-using-oauth-c.md` lines
//! 201-211 and 263: "Validate URLs, limit response size, timeout requests").
//!
//! - `https` only, and no userinfo in the URL;
//! - no redirect is followed (a 3xx is a failure), no proxy is used (an environment proxy
//!   would connect somewhere else than the address checked);
//! - every address the host name resolves to is checked by [`FilteringResolver`] *before*
//!   reqwest connects, so the connection goes only to an address that passed (an IP literal
//!   in the URL never reaches a resolver and is checked here directly);
//! - one overall timeout covers connect, TLS, headers and body;
//! - the body is read chunk by chunk and the fetch stops as soon as it passes the size cap,
//!   so an endless or huge document costs at most the cap.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Why a document could not be fetched. Messages are shown to the user and sent to the client
/// (`error_description`): they name the URL's host, never anything the issuer holds.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("the client_id is not an https URL")]
    NotHttps,
    #[error("the client metadata document URL must not contain user information or a fragment")]
    BadUrl,
    #[error(
        "the client metadata document host {host} is a {kind} address, which this authorization server does not fetch from"
    )]
    ForbiddenAddress { host: String, kind: &'static str },
    #[error("the client metadata document host {0} could not be resolved")]
    Resolve(String),
    #[error("the client metadata document could not be fetched within {0:?}")]
    Timeout(Duration),
    #[error("the client metadata document could not be fetched: {0}")]
    Connect(String),
    #[error(
        "fetching the client metadata document was answered with a redirect (HTTP {0}); redirects are not followed"
    )]
    Redirect(u16),
    #[error("fetching the client metadata document was answered with HTTP {0}")]
    Status(u16),
    #[error("the client metadata document is larger than {0} bytes")]
    TooLarge(usize),
}

/// A fetched document: its body (at most the cap) and the `Cache-Control` header, if any.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) body: Vec<u8>,
    pub(crate) cache_control: Option<String>,
}

/// The HTTP client for metadata documents, built once per issuer.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    client: reqwest::Client,
    allow_loopback: bool,
    timeout: Duration,
    max_bytes: usize,
}

impl Fetcher {
    /// `extra_roots`: PEM certificates trusted besides the system's roots (tests).
    pub(crate) fn new(
        allow_loopback: bool,
        extra_roots: &[u8],
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .https_only(true)
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("mcp-auth-issuer/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(FilteringResolver { allow_loopback });
        if !extra_roots.is_empty() {
            let certs = reqwest::Certificate::from_pem_bundle(extra_roots)
                .map_err(|e| format!("the CIMD root certificate is not valid PEM: {e}"))?;
            if certs.is_empty() {
                return Err("the CIMD root certificate file holds no certificate".into());
            }
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot build the CIMD HTTP client: {e}"))?;
        Ok(Self {
            client,
            allow_loopback,
            timeout,
            max_bytes,
        })
    }

    /// Fetch `url` under every rule of this module.
    pub(crate) async fn fetch(&self, url: &Url) -> Result<Fetched, FetchError> {
        if url.scheme() != "https" {
            return Err(FetchError::NotHttps);
        }
        if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
            return Err(FetchError::BadUrl);
        }
        // An IP literal is connected to as is: check it here (reqwest resolves names only).
        let literal = match url.host() {
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(Host::Domain(_)) => None,
            None => return Err(FetchError::BadUrl),
        };
        if let Some(ip) = literal
            && let Some(kind) = refused(ip, self.allow_loopback)
        {
            return Err(FetchError::ForbiddenAddress {
                host: ip.to_string(),
                kind,
            });
        }
        match tokio::time::timeout(self.timeout, self.fetch_unchecked(url)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout(self.timeout)),
        }
    }

    async fn fetch_unchecked(&self, url: &Url) -> Result<Fetched, FetchError> {
        let mut response = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| self.request_error(&e))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(FetchError::Redirect(status.as_u16()));
        }
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Err(FetchError::TooLarge(self.max_bytes));
        }
        let cache_control = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.request_error(&e))? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(FetchError::TooLarge(self.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            body,
            cache_control,
        })
    }

    fn request_error(&self, e: &reqwest::Error) -> FetchError {
        if e.is_timeout() {
            return FetchError::Timeout(self.timeout);
        }
        // The resolver's refusal travels as the source of a connect error.
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = source {
            if let Some(refusal) = err.downcast_ref::<Refused>() {
                return match refusal {
                    Refused::Address { host, kind } => FetchError::ForbiddenAddress {
                        host: host.clone(),
                        kind,
                    },
                    Refused::Unresolvable(host) => FetchError::Resolve(host.clone()),
                };
            }
            source = err.source();
        }
        // Neither the URL nor reqwest's message carries a secret; the chain says what failed
        // (TLS, connection refused).
        let mut message = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(err) = source {
            message.push_str(": ");
            message.push_str(&err.to_string());
            source = err.source();
        }
        FetchError::Connect(message)
    }
}

/// A resolver's refusal, carried through reqwest's error chain.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("{host} resolves to a {kind} address")]
    Address { host: String, kind: &'static str },
    #[error("{0} could not be resolved")]
    Unresolvable(String),
}

/// The system resolver, keeping only addresses the issuer may connect to. When a name resolves
/// to any refused address the whole name is refused (a name that mixes public and private
/// addresses is a rebinding attempt, not a client to serve).
#[derive(Debug, Clone, Copy)]
struct FilteringResolver {
    allow_loopback: bool,
}

impl Resolve for FilteringResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(resolve_filtered(
            name.as_str().to_owned(),
            self.allow_loopback,
        ))
    }
}

async fn resolve_filtered(
    host: String,
    allow_loopback: bool,
) -> Result<Addrs, Box<dyn std::error::Error + Send + Sync>> {
    let looked_up = tokio::net::lookup_host((host.clone(), 0)).await;
    let addrs: Vec<SocketAddr> = match looked_up {
        Ok(addrs) => addrs.collect(),
        Err(_) => return Err(Box::new(Refused::Unresolvable(host))),
    };
    if addrs.is_empty() {
        return Err(Box::new(Refused::Unresolvable(host)));
    }
    if let Some(kind) = addrs.iter().find_map(|a| refused(a.ip(), allow_loopback)) {
        return Err(Box::new(Refused::Address { host, kind }));
    }
    Ok(Box::new(addrs.into_iter()))
}

/// `Some(kind)` when `ip` is in a special-purpose range the issuer never fetches from (IANA
/// IPv4 and IPv6 special-purpose address registries: loopback, private, shared, link-local,
/// unique-local, documentation, benchmarking, multicast, reserved, unspecified); loopback
/// passes when `allow_loopback` (development and tests).
pub(crate) fn refused(ip: IpAddr, allow_loopback: bool) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4, allow_loopback),
        IpAddr::V6(v6) => {
            // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible addresses reach the IPv4 host.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return refused_v4(v4, allow_loopback);
            }
            refused_v6(v6, allow_loopback)
        }
    }
}

fn refused_v4(ip: Ipv4Addr, allow_loopback: bool) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        return (!allow_loopback).then_some("loopback");
    }
    if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified (\"this network\")")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else if a == 192 && b == 0 && c == 0 {
        Some("IETF protocol assignment")
    } else if ip.is_documentation() {
        Some("documentation")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("benchmarking")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if a >= 240 {
        Some("reserved")
    } else {
        None
    }
}

fn refused_v6(ip: Ipv6Addr, allow_loopback: bool) -> Option<&'static str> {
    let segments = ip.segments();
    if ip.is_loopback() {
        return (!allow_loopback).then_some("loopback");
    }
    if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_unique_local() {
        Some("unique-local")
    } else if ip.is_unicast_link_local() || (segments[0] & 0xffc0) == 0xfec0 {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if segments[0] == 0x2001 && segments[1] == 0x0db8 {
        Some("documentation")
    } else if segments[0] == 0x0064 && segments[1] == 0xff9b {
        // NAT64 (64:ff9b::/96 and the local-use 64:ff9b:1::/48) can reach any IPv4 address,
        // private ones included.
        Some("NAT64")
    } else if segments[0] == 0x2002 {
        // 6to4 embeds an IPv4 address the relay connects to.
        Some("6to4")
    } else if segments[0] == 0x2001 && segments[1] < 0x0200 {
        // 2001::/23: IETF protocol assignments (Teredo, benchmarking, ORCHID…).
        Some("IETF protocol assignment")
    } else if segments[0] == 0x0100 && segments[1..4] == [0, 0, 0] {
        Some("discard-only")
    } else if segments[..6] == [0, 0, 0, 0, 0, 0] {
        // IPv4-compatible (deprecated): reaches the embedded IPv4 host.
        Some("IPv4-compatible")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_purpose_addresses_are_refused() {
        for (ip, kind) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("0.0.0.0", "unspecified (\"this network\")"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("198.18.0.1", "benchmarking"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00::1", "unique-local"),
            ("fe80::1", "link-local"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:127.0.0.1", "loopback"),
            ("64:ff9b::a00:1", "NAT64"),
            ("2002:a00:1::", "6to4"),
            ("ff02::1", "multicast"),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(refused(ip, false), Some(kind), "{ip}");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            let ip: IpAddr = public.parse().unwrap();
            assert_eq!(refused(ip, false), None, "{ip}");
        }
    }

    #[test]
    fn the_loopback_opt_in_allows_loopback_only() {
        for ip in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(refused(ip.parse().unwrap(), true), None, "{ip}");
        }
        for ip in ["10.0.0.1", "169.254.169.254", "fd00::1"] {
            assert!(refused(ip.parse().unwrap(), true).is_some(), "{ip}");
        }
    }
}
