//! What the step-up guard costs a `tools/call` for a tool that needs no scope, on a server
//! where other tools do: the price every unscoped call pays for the guard's existence. Run with
//! `cargo bench -p mcp-auth --features fuzzing --bench step_up`.
//!
//! Two views, both written against APIs that exist unchanged since the guard learned prompts
//! and resources, so this file measures the commits before and after that rewrite alike:
//! - `step_up_unscoped_call_body*`: the guard alone, through `mcp_auth::__fuzz::StepUpGuard`
//!   (the `fuzzing` feature), deciding from the body exactly as the MCP endpoint does for a
//!   request whose span is not recorded (the default log level): the fast path that skips
//!   parsing when the body cannot name a scoped tool, else a parse. That handle has no way in
//!   for headers, hence the second view.
//! - `step_up_check_unscoped_call*`: the guard's whole step on a request
//!   (`mcp_auth::__fuzz::StepUpGuard::passes`, i.e. `StepUp::check`): header look-ups, the
//!   bounded body read, the decision and the request re-assembled, for a 2025-06-18 request
//!   (no `Mcp-Method`/`Mcp-Name`) carrying the caller's `AuthInfo`.
//! - `stack_*`: the whole MCP endpoint in process (`tower::ServiceExt::oneshot` on the built
//!   `Router`, a valid token, the tool run and its answer read), for a body-only request and
//!   for a 2026-07-28 request whose `Mcp-Method`/`Mcp-Name` headers the guard reads; each once
//!   on a server with scoped tools (guard built) and once on the same server without them (no
//!   guard), so the difference is the guard's share.
#![allow(missing_docs)]

use std::{hint::black_box, time::Duration};

use axum::body::Body;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::Request;
use http_body_util::BodyExt;
use mcp_auth::{__fuzz::StepUpGuard, AuthInfo, McpServer, TokenKind, VerifyError};
use tower::ServiceExt;

const RESOURCE: &str = "http://127.0.0.1:8787/mcp";

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct NoArgs {}

/// The quickstart's shape: `whoami` for anyone, and (when `scoped`) the scoped tools of
/// [`SCOPED`]. The verifier accepts any token as a user holding `openid`.
fn app(scoped: bool) -> axum::Router {
    let mut builder = McpServer::builder(RESOURCE)
        .authorization_server("https://issuer.bench")
        .legacy_authorization_server_metadata(false)
        .verifier(|_: &str| async {
            Ok::<_, VerifyError>(
                AuthInfo::builder("user_bench", TokenKind::OAuthAccessToken)
                    .scopes(["openid"])
                    .build(),
            )
        })
        .tool(
            "whoami",
            "Who is calling",
            |_: NoArgs, auth: AuthInfo| async move { auth.user_id().to_owned() },
        );
    if scoped {
        for name in SCOPED {
            builder = builder.scoped_tool(
                name,
                "Needs admin:read",
                ["admin:read"],
                |_: NoArgs, _: AuthInfo| async { String::from("secret") },
            );
        }
    }
    builder.build().expect("router")
}

/// A `tools/call` of `whoami`: body only (2025-06-18), or with the 2026-07-28 headers.
fn request(body: &'static [u8], headers: bool) -> Request<Body> {
    let mut req = Request::post(RESOURCE)
        .header("host", "127.0.0.1:8787")
        .header("authorization", "Bearer bench-token")
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json");
    req = if headers {
        req.header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "whoami")
    } else {
        req.header("mcp-protocol-version", "2025-06-18")
    };
    req.body(Body::from(body)).expect("request")
}

/// One request through the whole endpoint, its answer read to the end.
async fn call(
    app: &axum::Router,
    body: &'static [u8],
    headers: bool,
) -> (http::StatusCode, bytes::Bytes) {
    let resp = app
        .clone()
        .oneshot(request(body, headers))
        .await
        .expect("infallible");
    let status = resp.status();
    (
        status,
        resp.into_body().collect().await.expect("body").to_bytes(),
    )
}

/// The quickstart's scoped tool, and two more as a larger server would have.
const SCOPED: [&str; 3] = ["get-private-metadata", "delete-repository", "admin-report"];

fn benches(c: &mut Criterion) {
    let guard = StepUpGuard::new(SCOPED).expect("a guard for scoped tools");

    // A `tools/call` for the unscoped `whoami` as the TypeScript SDK client sends it: the
    // request object (`method`, `params`) spread before `jsonrpc` and `id`
    // (`Protocol.request`, `src/shared/protocol.ts`), serialised with `JSON.stringify`.
    let plain = br#"{"method":"tools/call","params":{"name":"whoami","arguments":{}},"jsonrpc":"2.0","id":2}"#;
    assert!(guard.tools_seen(plain).is_empty(), "whoami needs no scope");
    c.bench_function("step_up_unscoped_call_body", |b| {
        b.iter(|| guard.tools_seen(black_box(plain)))
    });

    // The same call with arguments and a progress token (`_meta`), as an SDK sends it when
    // the caller asks for progress: a longer body to search.
    let with_args = br#"{"method":"tools/call","params":{"name":"search-issues","arguments":{"query":"label:bug state:open sort:updated","limit":50,"include_closed":false},"_meta":{"progressToken":7}},"jsonrpc":"2.0","id":7}"#;
    assert!(guard.tools_seen(with_args).is_empty());
    c.bench_function("step_up_unscoped_call_body_with_args", |b| {
        b.iter(|| guard.tools_seen(black_box(with_args)))
    });

    // A body with an escape (`\/` or `\u…`, which some JSON encoders emit) cannot take the fast
    // path: the guard parses it. Unscoped still; this is the slow path's price.
    let escaped = br#"{"method":"tools\/call","params":{"name":"whoami","arguments":{"path":"a\/b"}},"jsonrpc":"2.0","id":3}"#;
    assert_eq!(
        guard.tools_seen(escaped),
        ["whoami"],
        "parsed, seen, unscoped"
    );
    c.bench_function("step_up_unscoped_call_body_parsed", |b| {
        b.iter(|| guard.tools_seen(black_box(escaped)))
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    // The guard's whole share of a request: what `StepUp::check` does for the unscoped call
    // (the `Mcp-Protocol-Version` look-up, the bounded body read, the decision, the request
    // re-assembled), on the request as the endpoint hands it over: the headers a client
    // sends and the caller's `AuthInfo`. Building the request is not measured.
    let guarded_request = |body: &'static [u8]| {
        let mut req = request(body, false);
        req.extensions_mut().insert(
            AuthInfo::builder("user_bench", TokenKind::OAuthAccessToken)
                .scopes(["openid"])
                .build(),
        );
        req
    };
    assert!(rt.block_on(guard.passes(guarded_request(plain))));
    for (label, body) in [("", plain as &[u8]), ("_with_args", with_args)] {
        let body: &'static [u8] = body;
        c.bench_function(&format!("step_up_check_unscoped_call{label}"), |b| {
            b.iter_batched(
                || guarded_request(body),
                |req| rt.block_on(guard.passes(req)),
                BatchSize::SmallInput,
            )
        });
    }
    // A 2026-07-28 request carries the protocol version and client capabilities in `_meta`
    // (rmcp refuses it without them).
    let modern = br#"{"method":"tools/call","params":{"name":"whoami","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}},"jsonrpc":"2.0","id":2}"#;
    for (label, scoped) in [("guarded", true), ("unguarded", false)] {
        let app = app(scoped);
        for (form, headers) in [("body", false), ("headers", true)] {
            let body: &'static [u8] = if headers { modern } else { plain };
            let (status, answer) = rt.block_on(call(&app, body, headers));
            let text = String::from_utf8_lossy(&answer);
            assert!(
                status == 200 && text.contains("user_bench") && !text.contains("\"error\""),
                "{label} {form}: {status} {text}"
            );
            c.bench_function(&format!("stack_{form}_{label}"), |b| {
                b.iter(|| rt.block_on(call(&app, black_box(body), headers)))
            });
        }
    }
}

criterion_group! {
    name = step_up;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(step_up);
