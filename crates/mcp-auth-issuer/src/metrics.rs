//! Prometheus text exposition at `GET /metrics`: requests per route template, method and status,
//! and tokens issued per kind. Tests count Backend API calls and 429s with it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::Shared;

/// Name of the request counter.
pub(crate) const REQUESTS_TOTAL: &str = "mcp_auth_issuer_requests_total";
/// Name of the issued-token counter.
pub(crate) const TOKENS_ISSUED_TOTAL: &str = "mcp_auth_issuer_tokens_issued_total";
/// Name of the client metadata document (CIMD) counter.
pub(crate) const METADATA_DOCUMENTS_TOTAL: &str = "mcp_auth_issuer_client_metadata_documents_total";

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    tokens: Mutex<BTreeMap<&'static str, u64>>,
    metadata_documents: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    fn record_request(&self, path: &str, method: &str, status: u16) {
        let mut map = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry((path.to_owned(), method.to_owned(), status))
            .or_default() += 1;
    }

    pub(crate) fn token_issued(&self, kind: &'static str) {
        let mut map = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry(kind).or_default() += 1;
    }

    /// A client metadata document lookup: `fetched`, `cached`, `fetch_failed` or `invalid`.
    pub(crate) fn metadata_document(&self, outcome: &'static str) {
        let mut map = self
            .metadata_documents
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry(outcome).or_default() += 1;
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP {REQUESTS_TOTAL} HTTP requests handled, by route template, method and status.\n\
             # TYPE {REQUESTS_TOTAL} counter"
        );
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for ((path, method, status), count) in requests.iter() {
            let _ = writeln!(
                out,
                "{REQUESTS_TOTAL}{{path=\"{}\",method=\"{}\",status=\"{status}\"}} {count}",
                escape_label(path),
                escape_label(method)
            );
        }
        drop(requests);
        let _ = writeln!(
            out,
            "# HELP {TOKENS_ISSUED_TOTAL} Tokens and credentials issued, by kind.\n\
             # TYPE {TOKENS_ISSUED_TOTAL} counter"
        );
        let tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (kind, count) in tokens.iter() {
            let _ = writeln!(out, "{TOKENS_ISSUED_TOTAL}{{kind=\"{kind}\"}} {count}");
        }
        drop(tokens);
        let _ = writeln!(
            out,
            "# HELP {METADATA_DOCUMENTS_TOTAL} Client ID Metadata Document lookups, by outcome \
             (fetched, cached, fetch_failed, invalid).\n\
             # TYPE {METADATA_DOCUMENTS_TOTAL} counter"
        );
        let documents = self
            .metadata_documents
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (outcome, count) in documents.iter() {
            let _ = writeln!(
                out,
                "{METADATA_DOCUMENTS_TOTAL}{{outcome=\"{outcome}\"}} {count}"
            );
        }
        out
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Middleware: count every routed request under its route template (never the raw path, which
/// would put user ids and unbounded cardinality into labels).
pub(crate) async fn count_requests(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    shared
        .metrics
        .record_request(&path, &method, response.status().as_u16());
    response
}

/// `GET /metrics`.
pub(crate) async fn serve_metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        shared.metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_escaped_labels() {
        let m = Metrics::default();
        m.record_request("/v1/users/{id}", "GET", 200);
        m.record_request("/v1/users/{id}", "GET", 200);
        m.record_request("a\"b", "GET", 404);
        m.token_issued("access_token");
        let text = m.render();
        assert!(text.contains(
            "mcp_auth_issuer_requests_total{path=\"/v1/users/{id}\",method=\"GET\",status=\"200\"} 2"
        ));
        assert!(text.contains("path=\"a\\\"b\""));
        assert!(text.contains("mcp_auth_issuer_tokens_issued_total{kind=\"access_token\"} 1"));
    }
}
