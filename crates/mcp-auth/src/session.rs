//! Binding MCP sessions to the identity that opened them.
//!
//! Sessions never authenticate anything (MCP specification, security best practices): every
//! request still carries and verifies its own token. What this adds is that a session id, once
//! issued to `(issuer, user, client)`, is refused for any other identity, so a leaked or guessed
//! session id is useless to another user.
//!
//! It also bounds open sessions, in total (`max_sessions`) and per user
//! (`max_sessions_per_user`, so one caller cannot hold every slot). A user's count is the
//! sessions bound to them plus the session-opening requests of theirs in flight, so concurrent
//! opens cannot overshoot it; a session closed with `DELETE` frees its slot at once, one that
//! expires frees it when its binding expires.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{extract::Request, response::Response};
use http::{Method, StatusCode};
use moka::{notification::RemovalCause, sync::Cache};

use crate::{AuthInfo, challenge::plain_error};

const SESSION_HEADER: &str = "mcp-session-id";

/// `(issuer, user_id, client_id)`.
type Principal = (Option<String>, String, Option<String>);

/// `(issuer, user_id)`: whose sessions count against one per-user limit (whatever client
/// they come through).
type UserKey = (Option<String>, String);

/// Open sessions (and session-opening requests in flight) per user.
type UserCounts = Arc<Mutex<HashMap<UserKey, u64>>>;

/// Remembers which identity opened which session.
#[derive(Clone)]
pub(crate) struct SessionBindings {
    bindings: Cache<String, Principal>,
    per_user: UserCounts,
    max_sessions: u64,
    max_per_user: u64,
}

fn user_key(principal: &Principal) -> UserKey {
    (principal.0.clone(), principal.1.clone())
}

fn release(counts: &UserCounts, user: &UserKey) {
    let mut counts = counts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(n) = counts.get_mut(user) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(user);
        }
    }
}

impl SessionBindings {
    /// `idle` must be longer than rmcp's session keep-alive, so a binding never disappears
    /// while its session still lives.
    pub(crate) fn new(max_sessions: u64, max_per_user: u64, idle: Duration) -> Self {
        let per_user: UserCounts = Arc::default();
        let counts = per_user.clone();
        Self {
            bindings: Cache::builder()
                .max_capacity(max_sessions)
                .time_to_idle(idle)
                // Bindings that expire or are evicted free their user's slot. Explicit
                // removals (`DELETE`) release it where they happen, at once.
                .eviction_listener(move |_id, owner: Principal, cause| {
                    if matches!(cause, RemovalCause::Expired | RemovalCause::Size) {
                        release(&counts, &user_key(&owner));
                    }
                })
                .build(),
            per_user,
            max_sessions,
            max_per_user,
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
    /// Go on; if the answer opens a session, it belongs to this principal, whose slot is held
    /// by the reservation until then.
    RecordOwner(Principal, Reservation),
    /// Go on; a `DELETE` of this session: if it succeeds, the binding goes and its slot is
    /// freed.
    Close(String),
}

/// One per-user slot held by a session-opening request in flight. Released when dropped,
/// unless the request opened a session (the binding then holds the slot); so a request that
/// fails, or whose client goes away, never leaks a slot.
pub(crate) struct Reservation {
    counts: UserCounts,
    user: Option<UserKey>,
}

impl Reservation {
    /// The slot now belongs to a binding.
    fn keep(mut self) {
        self.user = None;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(user) = self.user.take() {
            release(&self.counts, &user);
        }
    }
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
    /// This user has as many sessions open as one user may.
    UserFull,
}

impl SessionRefusal {
    pub(crate) fn response(self) -> Response {
        let (status, code, description) = match self {
            Self::UserFull => {
                let mut response = plain_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_sessions",
                    "too many open sessions for this user; close one (DELETE) or try again later",
                );
                response.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("60"),
                );
                return response;
            }
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
    /// limit, 429 when it would pass the caller's own limit.
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
            let principal = Self::principal(info);
            let user = user_key(&principal);
            {
                let mut counts = self
                    .per_user
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let count = counts.entry(user.clone()).or_insert(0);
                if *count >= self.max_per_user {
                    tracing::warn!(
                        user = info.user_id(),
                        max_sessions_per_user = self.max_per_user,
                        "per-user session limit reached; new session refused"
                    );
                    return Err(SessionRefusal::UserFull);
                }
                *count += 1;
            }
            let reservation = Reservation {
                counts: self.per_user.clone(),
                user: Some(user),
            };
            return Ok(SessionCheck::RecordOwner(principal, reservation));
        };
        // A session we hold no owner for is refused, never let through: normally rmcp does not
        // know it either (bindings outlive sessions), but a binding evicted by the size bound
        // while its session lives must not make the session usable by anyone. 404 tells the
        // client to start a new session (MCP transport specification).
        let Some(owner) = id.to_str().ok().and_then(|id| self.bindings.get(id)) else {
            return Err(SessionRefusal::Unknown);
        };
        if (owner.0.as_deref(), owner.1.as_str(), owner.2.as_deref()) == info.principal() {
            if req.method() == Method::DELETE
                && let Ok(id) = id.to_str()
            {
                return Ok(SessionCheck::Close(id.to_owned()));
            }
            return Ok(SessionCheck::Pass);
        }
        tracing::warn!(
            user = info.user_id(),
            "request on a session opened by another identity refused"
        );
        Err(SessionRefusal::OtherOwner)
    }

    /// After the answer: records the owner of the session `response` opened, if it opened
    /// one; forgets a session a successful `DELETE` closed, freeing its owner's slot.
    pub(crate) fn record(&self, check: SessionCheck, response: &Response) {
        match check {
            SessionCheck::Pass => {}
            SessionCheck::RecordOwner(owner, reservation) => {
                if let Some(id) = response
                    .headers()
                    .get(SESSION_HEADER)
                    .and_then(|v| v.to_str().ok())
                {
                    reservation.keep();
                    self.bindings.insert(id.to_owned(), owner);
                }
            }
            SessionCheck::Close(id) => {
                if response.status().is_success()
                    && let Some(owner) = self.bindings.remove(&id)
                {
                    release(&self.per_user, &user_key(&owner));
                }
            }
        }
    }
}
