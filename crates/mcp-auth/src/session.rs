//! Binding MCP sessions to the identity that opened them.
//!
//! Sessions never authenticate anything (MCP specification, security best practices): every
//! request still carries and verifies its own token. What this adds is that a session id, once
//! issued to `(issuer, user, client)`, is refused for any other identity, so a leaked or guessed
//! session id is useless to another user.

use std::time::Duration;

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
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

/// Middleware: refuses a session id presented by anyone but its owner, and records the owner
/// of each session the inner service creates.
pub(crate) async fn enforce(
    State(bindings): State<SessionBindings>,
    req: Request,
    next: Next,
) -> Response {
    let Some(info) = req.extensions().get::<AuthInfo>().cloned() else {
        // No identity means the auth layer is in optional mode and the caller is anonymous;
        // anonymous callers may not use sessions that belong to someone.
        if req.headers().contains_key(SESSION_HEADER) {
            return plain_error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this session belongs to an authenticated caller",
            );
        }
        return next.run(req).await;
    };
    let presented = req
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match presented {
        Some(id) => match bindings.bindings.get(&id) {
            Some(owner) if owner == SessionBindings::principal(&info) => next.run(req).await,
            Some(_) => {
                tracing::warn!(
                    user = info.user_id(),
                    "request on a session opened by another identity refused"
                );
                plain_error(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "this session was opened by another user or client; start a new session",
                )
            }
            // Unknown to us means unknown to rmcp too (bindings outlive sessions): let rmcp
            // answer 404 so the client starts a new session.
            None => next.run(req).await,
        },
        None => {
            let response = next.run(req).await;
            if let Some(id) = response
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
            {
                bindings
                    .bindings
                    .insert(id.to_owned(), SessionBindings::principal(&info));
            }
            response
        }
    }
}
