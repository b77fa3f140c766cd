//! The issuer's OAuth endpoints, driven in-process through its router (no listener):
//! `/oauth/register` (RFC 7591), `/oauth/authorize` (RFC 6749 §4.1, GET and the consent POST),
//! `/oauth/token` (RFC 6749 §4.1.3, §6) and `/oauth/revoke` (RFC 7009), in sequences that can
//! reuse what earlier steps returned (client ids and secrets, codes, tokens).
//!
//! Never a panic, never a 5xx. Every JSON endpoint answers success or an error object whose
//! `error` is one its RFC defines. Every authorization redirect goes to a redirect URI the
//! client registered, carries `code` or an RFC 6749 §4.1.2.1 `error`, and names the issuer.
#![no_main]

use std::{
    net::SocketAddr,
    sync::{LazyLock, Mutex},
};

use arbitrary::Arbitrary;
use axum::{Router, body::Body};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use mcp_auth_issuer::{Issuer, IssuerConfig, IssuerHandle, default_users};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;
use url::Url;

const ADDR: &str = "127.0.0.1:8788";
const VERIFIER: &str = "fuzz-verifier-fuzz-verifier-fuzz-verifier-0123";
/// Inputs served by one issuer before a fresh one (empty store) replaces it.
const INPUTS_PER_ISSUER: u32 = 2048;

struct Current {
    app: Router,
    handle: IssuerHandle,
    served: u32,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    // Building an issuer loads its keys on tokio's blocking pool. One blocking thread that
    // never exits: a pool thread started or ended in the middle of an input shows up in
    // LeakSanitizer as a "leak" of its thread-local destructor list (64 bytes, glibc's
    // `__cxa_thread_atexit_impl`), which is the harness's doing, not the issuer's.
    static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(1)
            .thread_keep_alive(std::time::Duration::from_secs(365 * 24 * 3600))
            .build()
            .unwrap()
    });
    &RT
}

/// The issuer's signing keys are generated once, into a file every later issuer loads.
static KEY_FILE: LazyLock<std::path::PathBuf> = LazyLock::new(|| {
    std::env::temp_dir().join(format!(
        "mcp-auth-fuzz-issuer-keys-{}.json",
        std::process::id()
    ))
});

/// Redirect URIs of every client registered on the current issuer, by any input since it was
/// built. An input may name an earlier input's client (libFuzzer learns client ids from the
/// issuer's own comparisons), and the issuer then rightly redirects to that client's URIs.
static ISSUER_REDIRECTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn issuer() -> (Router, String) {
    static CURRENT: Mutex<Option<Current>> = Mutex::new(None);
    let mut current = CURRENT.lock().unwrap();
    if current
        .as_ref()
        .is_none_or(|c| c.served >= INPUTS_PER_ISSUER)
    {
        let config = IssuerConfig {
            auto_approve_user: Some(default_users()[0].id.clone()),
            key_file: Some(KEY_FILE.clone()),
            // An input's `client_id` may be an https URL: never fetch it (offline, and every
            // input stays fast).
            client_id_metadata_documents: false,
            ..IssuerConfig::default()
        };
        let addr: SocketAddr = ADDR.parse().unwrap();
        let (app, handle) = runtime().block_on(Issuer::router(config, addr)).unwrap();
        ISSUER_REDIRECTS.lock().unwrap().clear();
        *current = Some(Current {
            app,
            handle,
            served: 0,
        });
    }
    let c = current.as_mut().unwrap();
    c.served += 1;
    (c.app.clone(), c.handle.base_url())
}

const KNOWN: &[&str] = &[
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "code",
    "token",
    "S256",
    "plain",
    "openid",
    "profile email",
    "offline_access",
    "none",
    "client_secret_basic",
    "client_secret_post",
    "https://mcp.example/mcp",
    "http://127.0.0.1:3000/callback",
    "http://localhost/cb",
    "https://app.example/cb",
    "cursor://anysphere.cursor-mcp/oauth/callback",
    "access_token",
    "allow",
    "deny",
    "",
    "%",
    "&",
    "=",
];

const PARAMS: &[&str] = &[
    "grant_type",
    "code",
    "redirect_uri",
    "client_id",
    "client_secret",
    "code_verifier",
    "refresh_token",
    "scope",
    "resource",
    "response_type",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "prompt",
    "request",
    "request_uri",
    "token",
    "token_type_hint",
    "decision",
    "user_id",
    "csrf_token",
    "issued_at",
];

#[derive(Arbitrary, Debug, Clone)]
enum Text {
    Known(u8),
    Any(String),
    /// The id of the n-th client registered by this input.
    ClientId(u8),
    ClientSecret(u8),
    /// The n-th redirect URI of the n-th client, optionally with another port.
    RedirectUri(u8, u8, Option<u16>),
    Code,
    RefreshToken,
    AccessToken,
    Verifier,
    Challenge,
}

#[derive(Arbitrary, Debug, Clone)]
enum Param {
    Known(u8, Text),
    Any(String, Text),
}

#[derive(Arbitrary, Debug, Clone)]
enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Text(Text),
    Array(Vec<Val>),
    Object(Vec<(String, Val)>),
}

#[derive(Arbitrary, Debug, Clone)]
enum Registration {
    /// Typical DCR metadata, with fields the fuzzer varies.
    Typical {
        auth_method: Option<Text>,
        redirect_uris: Vec<Text>,
        grant_types: Option<Vec<Text>>,
        response_types: Option<Vec<Text>>,
        scope: Option<Text>,
        extra: Vec<(String, Val)>,
    },
    Json(Val),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug, Clone)]
enum ClientAuth {
    None,
    Basic(Text, Text),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug, Clone)]
enum ContentType {
    Form,
    FormCharset,
    Json,
    Missing,
    Any(String),
}

#[derive(Arbitrary, Debug, Clone)]
enum Step {
    Register(Registration),
    AuthorizeGet(Vec<Param>),
    AuthorizeRawQuery(String),
    AuthorizePost(Vec<Param>, ContentType),
    Token(Vec<Param>, ClientAuth, ContentType),
    TokenRaw(Vec<u8>, ClientAuth, ContentType),
    Revoke(Vec<Param>, ClientAuth, ContentType),
}

#[derive(Default)]
struct Context {
    /// (client_id, client_secret, redirect_uris) of clients this input registered.
    clients: Vec<(String, Option<String>, Vec<String>)>,
    code: Option<String>,
    refresh: Option<String>,
    access: Option<String>,
}

impl Context {
    fn text(&self, t: &Text) -> String {
        let client = |i: &u8| {
            self.clients
                .get(usize::from(*i) % self.clients.len().max(1))
        };
        match t {
            Text::Known(i) => KNOWN[usize::from(*i) % KNOWN.len()].to_owned(),
            Text::Any(s) => s.clone(),
            Text::ClientId(i) => client(i).map(|c| c.0.clone()).unwrap_or_default(),
            Text::ClientSecret(i) => client(i).and_then(|c| c.1.clone()).unwrap_or_default(),
            Text::RedirectUri(i, j, port) => client(i)
                .and_then(|c| c.2.get(usize::from(*j) % c.2.len().max(1)))
                .map(|u| match (port, Url::parse(u)) {
                    (Some(p), Ok(mut url)) => {
                        let _ = url.set_port(Some(*p));
                        url.to_string()
                    }
                    _ => u.clone(),
                })
                .unwrap_or_default(),
            Text::Code => self.code.clone().unwrap_or_default(),
            Text::RefreshToken => self.refresh.clone().unwrap_or_default(),
            Text::AccessToken => self.access.clone().unwrap_or_default(),
            Text::Verifier => VERIFIER.to_owned(),
            Text::Challenge => URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER)),
        }
    }

    fn form(&self, params: &[Param]) -> String {
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        for p in params {
            let (k, v) = match p {
                Param::Known(i, v) => (PARAMS[usize::from(*i) % PARAMS.len()].to_owned(), v),
                Param::Any(k, v) => (k.clone(), v),
            };
            out.append_pair(&k, &self.text(v));
        }
        out.finish()
    }

    fn json(&self, v: &Val, depth: u32) -> Value {
        if depth > 8 {
            return Value::Null;
        }
        match v {
            Val::Null => Value::Null,
            Val::Bool(b) => json!(b),
            Val::Int(i) => json!(i),
            Val::Text(t) => json!(self.text(t)),
            Val::Array(items) => items.iter().map(|i| self.json(i, depth + 1)).collect(),
            Val::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), self.json(v, depth + 1)))
                    .collect(),
            ),
        }
    }
}

/// RFC 6749 §5.2 (token), plus RFC 8707 §2 `invalid_target`.
const TOKEN_ERRORS: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
];
/// RFC 7591 §3.2.2.
const REGISTER_ERRORS: &[&str] = &[
    "invalid_redirect_uri",
    "invalid_client_metadata",
    "invalid_software_statement",
    "unapproved_software_statement",
];
/// RFC 7009 §2.2.1 names RFC 6749 §5.2's codes and `unsupported_token_type`.
const REVOKE_ERRORS: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "unauthorized_client",
    "unsupported_token_type",
];
/// RFC 6749 §4.1.2.1, RFC 8707 §2 `invalid_target`, OpenID Connect Core §3.1.2.6
/// (`consent_required`, `request_not_supported`, …).
const AUTHORIZE_ERRORS: &[&str] = &[
    "invalid_request",
    "unauthorized_client",
    "access_denied",
    "unsupported_response_type",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
    "invalid_target",
    "interaction_required",
    "login_required",
    "account_selection_required",
    "consent_required",
    "invalid_request_uri",
    "invalid_request_object",
    "request_not_supported",
    "request_uri_not_supported",
    "registration_not_supported",
];

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: bytes::Bytes,
}

fn send(app: &Router, req: Request<Body>) -> Answer {
    runtime().block_on(async {
        let resp = app.clone().oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    })
}

fn post(path: &str, body: Vec<u8>, ct: &ContentType, auth: Option<Vec<u8>>) -> Request<Body> {
    let mut req = Request::builder().method(Method::POST).uri(path);
    let ct = match ct {
        ContentType::Form => Some("application/x-www-form-urlencoded".to_owned()),
        ContentType::FormCharset => {
            Some("Application/X-WWW-Form-Urlencoded ; charset=UTF-8".to_owned())
        }
        ContentType::Json => Some("application/json".to_owned()),
        ContentType::Missing => None,
        ContentType::Any(s) => Some(s.clone()),
    };
    if let Some(ct) = ct.and_then(|c| http::HeaderValue::from_str(&c).ok()) {
        req = req.header(header::CONTENT_TYPE, ct);
    }
    if let Some(v) = auth.and_then(|a| http::HeaderValue::from_bytes(&a).ok()) {
        req = req.header(header::AUTHORIZATION, v);
    }
    req.body(Body::from(body)).unwrap()
}

fn authorization(ctx: &Context, auth: &ClientAuth) -> Option<Vec<u8>> {
    match auth {
        ClientAuth::None => None,
        ClientAuth::Basic(id, secret) => {
            // RFC 6749 §2.3.1: each half form-encoded, then joined and base64-encoded.
            let enc =
                |s: String| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = format!("{}:{}", enc(ctx.text(id)), enc(ctx.text(secret)));
            Some(format!("Basic {}", STANDARD.encode(pair)).into_bytes())
        }
        ClientAuth::Raw(bytes) => Some(bytes.clone()),
    }
}

/// A JSON endpoint's answer: success, or an error object with one of `allowed`.
fn check_json_error(what: &str, a: &Answer, allowed: &[&str]) {
    assert!(
        matches!(
            a.status,
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::PAYLOAD_TOO_LARGE
        ),
        "{what}: status {} ({:?})",
        a.status,
        String::from_utf8_lossy(&a.body)
    );
    let body: Value = serde_json::from_slice(&a.body)
        .unwrap_or_else(|_| panic!("{what}: not JSON: {:?}", String::from_utf8_lossy(&a.body)));
    let code = body["error"].as_str().unwrap_or_default();
    assert!(
        allowed.contains(&code),
        "{what}: error {code:?} is not an RFC one ({body})"
    );
    if a.status == StatusCode::UNAUTHORIZED {
        assert_eq!(
            code, "invalid_client",
            "{what}: 401 is only for invalid_client"
        );
    }
    // A body over the issuer's 64 KiB limit (the target's texts can expand to more), in the
    // endpoint's own vocabulary: RFC 7591 §3.2.2 at registration, RFC 6749 elsewhere.
    if a.status == StatusCode::PAYLOAD_TOO_LARGE {
        let expected = if what == "register" {
            "invalid_client_metadata"
        } else {
            "invalid_request"
        };
        assert_eq!(code, expected, "{what}: 413 is only {expected}");
    }
}

/// `registered` with the port of a loopback URI ignored (RFC 8252 §7.3).
fn same_redirect_target(registered: &str, location: &Url) -> bool {
    let Ok(reg) = Url::parse(registered) else {
        return false;
    };
    let loopback = match reg.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    reg.scheme() == location.scheme()
        && reg.host() == location.host()
        && (loopback || reg.port_or_known_default() == location.port_or_known_default())
        && reg.path() == location.path()
        && reg.username() == location.username()
        && reg.password() == location.password()
}

fn check_authorize(a: &Answer, ctx: &mut Context, base_url: &str) {
    match a.status {
        StatusCode::FOUND | StatusCode::SEE_OTHER => {
            let location = a
                .headers
                .get(header::LOCATION)
                .expect("a redirect has a Location");
            let location = Url::parse(location.to_str().unwrap()).expect("Location is a URL");
            let pairs: Vec<(String, String)> = location.query_pairs().into_owned().collect();
            // The registered URI's own query is kept, first (RFC 6749 §3.1.2), and may hold any
            // names, `code` and `error` included: only what follows it is the issuer's answer.
            let kept = ctx
                .clients
                .iter()
                .flat_map(|c| c.2.iter())
                .chain(ISSUER_REDIRECTS.lock().unwrap().iter())
                .filter(|r| same_redirect_target(r, &location))
                .filter_map(|r| {
                    let own: Vec<(String, String)> =
                        Url::parse(r).ok()?.query_pairs().into_owned().collect();
                    pairs.starts_with(&own).then_some(own.len())
                })
                .max();
            let Some(kept) = kept else {
                panic!(
                    "redirect to {location}, which is no redirect URI registered on this issuer \
                     with its query kept"
                )
            };
            let added = &pairs[kept..];
            let get = |k: &str| {
                added
                    .iter()
                    .rev()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
            };
            assert_eq!(
                get("iss").as_deref(),
                Some(base_url),
                "RFC 9207 iss in {location}"
            );
            match (get("code"), get("error")) {
                (Some(code), None) => ctx.code = Some(code),
                (None, Some(error)) => assert!(
                    AUTHORIZE_ERRORS.contains(&error.as_str()),
                    "authorize error {error:?} is not an RFC one"
                ),
                _ => panic!("a redirect carries exactly one of code and error: {location}"),
            }
        }
        // The consent page, or an error page shown to the user when the client or its
        // redirect URI cannot be trusted (RFC 6749 §4.1.2.1: never redirect then).
        StatusCode::OK
        | StatusCode::BAD_REQUEST
        | StatusCode::FORBIDDEN
        | StatusCode::UNSUPPORTED_MEDIA_TYPE => {}
        // A consent POST over the issuer's 64 KiB body limit (the target's texts expand: a
        // token or a redirect URI is one byte of input): an OAuth error object, not text.
        StatusCode::PAYLOAD_TOO_LARGE => check_json_error("authorize", a, &["invalid_request"]),
        other => panic!("authorize answered {other}"),
    }
}

fuzz_target!(|steps: Vec<Step>| {
    let (app, base_url) = issuer();
    let mut ctx = Context::default();
    for step in steps.iter().take(8) {
        match step {
            Step::Register(reg) => {
                let body = match reg {
                    Registration::Typical {
                        auth_method,
                        redirect_uris,
                        grant_types,
                        response_types,
                        scope,
                        extra,
                    } => {
                        let mut m = Map::new();
                        m.insert(
                            "redirect_uris".into(),
                            redirect_uris.iter().map(|u| json!(ctx.text(u))).collect(),
                        );
                        if let Some(a) = auth_method {
                            m.insert("token_endpoint_auth_method".into(), json!(ctx.text(a)));
                        }
                        if let Some(g) = grant_types {
                            m.insert(
                                "grant_types".into(),
                                g.iter().map(|t| json!(ctx.text(t))).collect(),
                            );
                        }
                        if let Some(r) = response_types {
                            m.insert(
                                "response_types".into(),
                                r.iter().map(|t| json!(ctx.text(t))).collect(),
                            );
                        }
                        if let Some(s) = scope {
                            m.insert("scope".into(), json!(ctx.text(s)));
                        }
                        for (k, v) in extra {
                            m.insert(k.clone(), ctx.json(v, 0));
                        }
                        Value::Object(m).to_string().into_bytes()
                    }
                    Registration::Json(v) => ctx.json(v, 0).to_string().into_bytes(),
                    Registration::Raw(b) => b.clone(),
                };
                let a = send(
                    &app,
                    post("/oauth/register", body, &ContentType::Json, None),
                );
                if a.status == StatusCode::CREATED {
                    let doc: Value = serde_json::from_slice(&a.body).expect("JSON");
                    let id = doc["client_id"].as_str().expect("client_id").to_owned();
                    let secret = doc["client_secret"].as_str().map(str::to_owned);
                    let uris: Vec<String> = doc["redirect_uris"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|u| u.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    ISSUER_REDIRECTS
                        .lock()
                        .unwrap()
                        .extend(uris.iter().cloned());
                    ctx.clients.push((id, secret, uris));
                } else {
                    check_json_error("register", &a, REGISTER_ERRORS);
                }
            }
            Step::AuthorizeGet(params) => {
                let uri = format!("/oauth/authorize?{}", ctx.form(params));
                let Ok(req) = Request::get(uri).body(Body::empty()) else {
                    continue;
                };
                let a = send(&app, req);
                check_authorize(&a, &mut ctx, &base_url);
            }
            Step::AuthorizeRawQuery(query) => {
                let Ok(req) = Request::get(format!("/oauth/authorize?{query}")).body(Body::empty())
                else {
                    continue;
                };
                let a = send(&app, req);
                check_authorize(&a, &mut ctx, &base_url);
            }
            Step::AuthorizePost(params, ct) => {
                let body = ctx.form(params).into_bytes();
                let a = send(&app, post("/oauth/authorize", body, ct, None));
                check_authorize(&a, &mut ctx, &base_url);
            }
            Step::Token(params, auth, ct) => {
                let body = ctx.form(params).into_bytes();
                let a = send(
                    &app,
                    post("/oauth/token", body, ct, authorization(&ctx, auth)),
                );
                token_answer(&a, &mut ctx);
            }
            Step::TokenRaw(body, auth, ct) => {
                let a = send(
                    &app,
                    post("/oauth/token", body.clone(), ct, authorization(&ctx, auth)),
                );
                token_answer(&a, &mut ctx);
            }
            Step::Revoke(params, auth, ct) => {
                let body = ctx.form(params).into_bytes();
                let a = send(
                    &app,
                    post("/oauth/revoke", body, ct, authorization(&ctx, auth)),
                );
                if a.status != StatusCode::OK {
                    check_json_error("revoke", &a, REVOKE_ERRORS);
                }
            }
        }
    }
});

fn token_answer(a: &Answer, ctx: &mut Context) {
    if a.status == StatusCode::OK {
        let doc: Value = serde_json::from_slice(&a.body).expect("JSON");
        assert!(doc["access_token"].is_string(), "{doc}");
        assert!(
            doc["token_type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
            "{doc}"
        );
        ctx.access = doc["access_token"].as_str().map(str::to_owned);
        if let Some(r) = doc["refresh_token"].as_str() {
            ctx.refresh = Some(r.to_owned());
        }
    } else {
        check_json_error("token", a, TOKEN_ERRORS);
    }
}
