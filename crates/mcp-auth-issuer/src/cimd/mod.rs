//! Client ID Metadata Documents (CIMD): a `client_id` that is an `https` URL names a JSON
//! document the client serves, and that document is its registration (MCP 2025-11-25
//! `basic/authorization.mdx` lines 211-240 and 305-309; 2026-07-28
//! `basic/authorization/client-registration.mdx` lines 20-51 and 116-120; SEP-991).
//!
//! - `fetch`: the SSRF-safe HTTP fetch (https only, no redirects, timeout, size cap, no
//!   special-purpose addresses).
//! - `document`: the document's validation, and the [`Client`] it describes.
//! - here: the lookup every endpoint uses, with the cache (the store's
//!   `client_metadata_documents` table) kept per the document's `Cache-Control`, within
//!   [`MIN_TTL`] and [`MAX_TTL`].

mod document;
mod fetch;

use std::time::Duration;

pub(crate) use document::is_url_client_id;
pub(crate) use fetch::Fetcher;

use crate::clients::Client;
use crate::state::Shared;
use crate::store::StoreError;

/// Shortest time a fetched document is reused: a client cannot make the issuer fetch on every
/// request by sending `max-age=1`.
pub(crate) const MIN_TTL: Duration = Duration::from_secs(60);
/// Longest time a document is reused without fetching it again (SEP-991 line 119: "max 24
/// hours recommended").
pub(crate) const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Reuse time of a document served without `Cache-Control: max-age`.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);

/// What a `client_id` turned out to be.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// A registered client, or a valid metadata document.
    Found(Client),
    /// Not a URL and not registered here.
    Unknown,
    /// A URL whose document could not be fetched or is invalid: the message says why, for the
    /// user and for the client (`error_description`).
    BadDocument(String),
}

/// How long a document served with `cache_control` may be reused; `None`: not at all
/// (`no-store`, RFC 9111 §5.2.2.5).
pub(crate) fn ttl(cache_control: Option<&str>) -> Option<Duration> {
    let mut max_age = None;
    for directive in cache_control.unwrap_or_default().split(',') {
        let directive = directive.trim();
        let (name, value) = directive
            .split_once('=')
            .map_or((directive, None), |(n, v)| (n.trim(), Some(v.trim())));
        if name.eq_ignore_ascii_case("no-store") {
            return None;
        }
        if name.eq_ignore_ascii_case("no-cache") {
            // May be stored but must be revalidated before each use: the floor applies.
            max_age = Some(0);
        } else if name.eq_ignore_ascii_case("max-age")
            && let Some(secs) = value.and_then(|v| v.trim_matches('"').parse::<u64>().ok())
        {
            max_age = Some(max_age.map_or(secs, |m: u64| m.min(secs)));
        }
    }
    Some(
        max_age
            .map_or(DEFAULT_TTL, Duration::from_secs)
            .clamp(MIN_TTL, MAX_TTL),
    )
}

/// Find the client `client_id` names: a registered one, or a metadata document (from the
/// cache while fresh, else fetched and cached).
pub(crate) async fn lookup(shared: &Shared, client_id: &str) -> Result<Lookup, StoreError> {
    if !is_url_client_id(client_id) {
        return Ok(match shared.store.read(|tx| tx.client(client_id))? {
            Some(client) => Lookup::Found(client),
            None => Lookup::Unknown,
        });
    }
    if !shared.config.accepts_metadata_documents() {
        return Ok(Lookup::BadDocument(
            "this authorization server does not accept Client ID Metadata Documents; register the client instead".into(),
        ));
    }
    let url = match document::parse_client_id_url(client_id) {
        Ok(url) => url,
        Err(message) => return Ok(Lookup::BadDocument(message)),
    };
    let now_ms = shared.clock.now_ms();
    if let Some(body) = shared
        .store
        .read(|tx| tx.metadata_document(client_id, now_ms))?
        && let Ok(client) = document::client_from_document(&url, body.as_bytes())
    {
        shared.metrics.metadata_document("cached");
        return Ok(Lookup::Found(client));
    }
    let fetched = match shared.cimd.fetch(&url).await {
        Ok(fetched) => fetched,
        Err(e) => {
            shared.metrics.metadata_document("fetch_failed");
            tracing::info!(client_id, error = %e, "client metadata document refused");
            return Ok(Lookup::BadDocument(e.to_string()));
        }
    };
    let client = match document::client_from_document(&url, &fetched.body) {
        Ok(client) => client,
        Err(message) => {
            shared.metrics.metadata_document("invalid");
            tracing::info!(client_id, error = %message, "client metadata document refused");
            return Ok(Lookup::BadDocument(message));
        }
    };
    shared.metrics.metadata_document("fetched");
    if let Some(ttl) = ttl(fetched.cache_control.as_deref()) {
        // Valid UTF-8: it parsed as JSON.
        let body = String::from_utf8_lossy(&fetched.body);
        let expires_ms = now_ms.saturating_add(crate::clock::millis(ttl));
        shared
            .store
            .write(|tx| tx.put_metadata_document(client_id, &body, now_ms, expires_ms))?;
    }
    Ok(Lookup::Found(client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_lifetime_follows_cache_control_within_bounds() {
        assert_eq!(ttl(None), Some(DEFAULT_TTL));
        assert_eq!(
            ttl(Some("public, max-age=3600")),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(ttl(Some("max-age=1")), Some(MIN_TTL));
        assert_eq!(ttl(Some("max-age=31536000")), Some(MAX_TTL));
        assert_eq!(ttl(Some("no-cache")), Some(MIN_TTL));
        assert_eq!(ttl(Some("max-age=600, no-store")), None);
        assert_eq!(ttl(Some("max-age=nonsense")), Some(DEFAULT_TTL));
    }
}
