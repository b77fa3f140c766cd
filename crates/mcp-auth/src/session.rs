//! Binding MCP sessions to the identity that opened them.
//!
//! Sessions never authenticate anything (MCP specification, security best practices): every
//! request still carries and verifies its own token. What this adds is that a session id, once
//! issued to `(issuer, user, client)`, is refused for any other identity, so a leaked or guessed
//! session id is useless to another user.

use std::time::Duration;

use axum::{extract::Request, response::Response};
use http::StatusCode;
use moka::sync::Cache;

use crate::{AuthInfo, challenge::plain_error};

const SESSION_HEADER: &str = "mcp-session-id";

/// `(issuer, user_id, client_id)`.
type Principal = (Option<String>, String, Option<String>);

/// Remembers which identity opened which session.
#[derive(Clone)]
pub(crate) struct SessionBindings {
    bindings: Cache<String, Principal>,
    max_sessions: u64,
}

impl SessionBindings {
    /// `idle` must be longer than rmcp's session keep-alive, so a binding never disappears
    /// while its session still lives.
    pub(crate) fn new(max_sessions: u64, idle: Duration) -> Self {
        Self {
            bindings: Cache::builder()
                .max_capacity(max_sessions)
                .time_to_idle(idle)
                .build(),
            max_sessions,
        }
    }

    fn principal(info: &AuthInfo) -> Principal {
        let (iss, user, client) = info.principal();
        (
            iss.map(str::to_owned),
            user.to_owned(),
            client.map(str::to_owned),
        )
    }
}

/// What [`SessionBindings::check`] decided for a request that may go on.
pub(crate) enum SessionCheck {
    /// Go on; nothing to record.
    Pass,
    /// Go on; if the answer opens a session, it belongs to this principal.
    RecordOwner(Principal),
}

/// Why a request may not use the session it names.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SessionRefusal {
    /// An anonymous caller named a session.
    Anonymous,
    /// The session was opened by another identity.
    OtherOwner,
    /// No owner is known for the session (expired, or never issued).
    Unknown,
    /// As many sessions as allowed are open already.
    Full,
}

impl SessionRefusal {
    pub(crate) fn response(self) -> Response {
        let (status, code, description) = match self {
            Self::Anonymous => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "this session belongs to an authenticated caller",
            ),
            Self::OtherOwner => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "this session was opened by another user or client; start a new session",
            ),
            Self::Unknown => (
                StatusCode::NOT_FOUND,
                "session_not_found",
                "unknown or expired session; start a new session",
            ),
            Self::Full => {
                let mut response = plain_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "too many open sessions; try again later",
                );
                response.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("60"),
                );
                return response;
            }
        };
        plain_error(status, code, description)
    }
}

impl SessionBindings {
    /// Decides whether the request may go on: 403 for a session presented by anyone but its
    /// owner, 404 for a session with no known owner, 503 when a new session would pass the
    /// limit.
    pub(crate) fn check(&self, req: &Request) -> Result<SessionCheck, SessionRefusal> {
        let presented = req.headers().get(SESSION_HEADER);
        let Some(info) = req.extensions().get::<AuthInfo>() else {
            // No identity means the auth layer is in optional mode and the caller is anonymous;
            // anonymous callers may not use sessions that belong to someone.
            if presented.is_some() {
                return Err(SessionRefusal::Anonymous);
            }
            return Ok(SessionCheck::Pass);
        };
        let Some(id) = presented else {
            // This request may open a session. Bindings live at least as long as sessions, so
            // their count bounds the sessions rmcp holds (about 50 KiB each, BENCHMARKS.md).
            // Counting is exact only after the cache's pending bookkeeping; that work is paid
            // here, on the rare requests that open sessions, not on every call. Concurrent
            // opens can pass the check together; the cache's capacity then evicts the least
            // recently used bindings, and their sessions get 404 below (never a free pass).
            self.bindings.run_pending_tasks();
            if self.bindings.entry_count() >= self.max_sessions {
                tracing::warn!(
                    max_sessions = self.max_sessions,
                    "session limit reached; new session refused"
                );
                return Err(SessionRefusal::Full);
            }
            return Ok(SessionCheck::RecordOwner(Self::principal(info)));
        };
        // A session we hold no owner for is refused, never let through: normally rmcp does not
        // know it either (bindings outlive sessions), but a binding evicted by the size bound
        // while its session lives must not make the session usable by anyone. 404 tells the
        // client to start a new session (MCP transport specification).
        let Some(owner) = id.to_str().ok().and_then(|id| self.bindings.get(id)) else {
            return Err(SessionRefusal::Unknown);
        };
        if (owner.0.as_deref(), owner.1.as_str(), owner.2.as_deref()) == info.principal() {
            return Ok(SessionCheck::Pass);
        }
        tracing::warn!(
            user = info.user_id(),
            "request on a session opened by another identity refused"
        );
        Err(SessionRefusal::OtherOwner)
    }

    /// Records the owner of the session `response` opened, if it opened one.
    pub(crate) fn record(&self, check: SessionCheck, response: &Response) {
        let SessionCheck::RecordOwner(owner) = check else {
            return;
        };
        if let Some(id) = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            self.bindings.insert(id.to_owned(), owner);
        }
    }
}
