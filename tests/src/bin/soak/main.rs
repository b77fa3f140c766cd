//! The soak with injected faults (`scripts/soak.sh`, issue 14): `examples/oidc-resource-server`
//! (JWTs) and `examples/quickstart` in Clerk mode (opaque `oat_…` tokens and JWTs), both fed by
//! `mcp-auth-issuer` through a fault proxy, under a mix of valid, expired, wrong-audience and
//! garbage tokens at about half of each server's maximum throughput (measured with both
//! servers loaded at once, as they run here), while
//!
//! - the signing key rotates every 30 s (new key published and used at once; the old one
//!   withdrawn from the published set after a 20 s grace period);
//! - the key endpoint fails for 20 s windows (HTTP 500, hang, garbage in turn);
//! - the Backend API answers 429 + `Retry-After`, then 5xx, then hangs, in 3 s bursts;
//! - clients disconnect mid-request (half a body; a whole request, then gone) and send whole
//!   requests byte by byte.
//!
//! A run shorter than 165 s has the same faults in the same order in shorter slots (at two
//! minutes, the test command's run: 10 s windows, 1.5 s bursts; see `Schedule`).
//!
//! It asserts, and exits non-zero on any violation: no valid token whose cached state covers
//! the moment is refused or delayed into a 503 (every one of them gets 200 with its own user
//! id); no valid token is ever answered 401; no invalid token is ever answered 200; every 503
//! carries `Retry-After`; no other status and no request left unanswered for 30 s; resident
//! memory and open descriptors other than client connections, TCP sockets caught opening or
//! closing and sockets in no TCP table (reset connections not yet closed) flat (within 10 % of
//! their level once every kind of key-endpoint fault has had its first window, at least 4
//! descriptors of slack, compared at quiet moments); all descriptors and established
//! connections back to that level at the end, clients gone (no task or connection leak, no
//! socket stuck half-closed or reset).
//!
//! ```sh
//! soak --seconds 600 --bin-dir target/debug --out target/soak
//! ```

mod procs;
mod proxy;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use base64::Engine;
use procs::{Server, Usage, bin, free_port, usage, wait_ready};
use proxy::{BackendFault, JwksFault, Proxy};
use rand::Rng;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const SECRET: &str = "sk_test_soaksoaksoaksoaksoaksoaksoak";
const ROTATE_EVERY: Duration = Duration::from_secs(30);
const GRACE: Duration = Duration::from_secs(20);
/// Old-key tokens stop being sent this long before their key is withdrawn.
const GRACE_MARGIN: Duration = Duration::from_secs(4);
/// Opaque tokens are sent for this long after they are minted: within the Clerk preset's
/// 60 s identity cache after their first success.
const OPAQUE_USE: Duration = Duration::from_secs(40);
/// An opaque token's first success covers it for this long (the cache keeps it 60 s).
const OPAQUE_COVER: Duration = Duration::from_secs(50);
const USERS: usize = 4;
const BODY: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#;

/// The key endpoint's three ways of failing take turns, one per slot, so every kind of fault has
/// had its first window after this many slots. The resource baseline is the quiet end of the
/// last of them (see `report`), compared with the quiet end of at least one slot after it.
const CYCLE: u32 = 3;

/// A slot of a run long enough for it: the key endpoint fails for 20 s windows.
const FULL_SLOT: f64 = 35.0;
/// The shortest slot a run gets: the key endpoint fails for 10 s windows. With it, a run of
/// two minutes (the test command's) has its four slots after the 20 s warm-up.
const SHORTEST_SLOT: f64 = 25.0;
/// The longest a call held by a hung upstream is held (the servers' upstream timeouts), so a
/// slot's quiet part starts this long after its last fault.
const HOLD: f64 = 8.0;
/// How long the end of each slot is quiet (nothing has failed for [`HOLD`] seconds): when
/// resources are compared.
const QUIET: f64 = 7.0;

/// The fault schedule, in seconds since the end of warm-up, in slots of `slot` seconds: the
/// key endpoint fails for the first `slot - HOLD - QUIET` seconds of each slot (500, hang,
/// garbage in turn); inside that window the Backend API has a 429 burst, a 5xx burst and then
/// hangs (at 2-5, 8-11 and 14-17 s of a 20 s window, scaled with the window); the last
/// [`QUIET`] seconds of the slot are quiet.
///
/// A run of 165 s or more has 35 s slots, 20 s windows: the issue's schedule. A shorter run gets
/// shorter slots, down to [`SHORTEST_SLOT`], so that it still has [`CYCLE`] slots for the
/// baseline and one after it: the same faults in the same order, each for less time.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    /// Seconds of load before the first slot: 15 % of the run, from 20 to 60 s.
    warmup: f64,
    slot: f64,
}

impl Schedule {
    fn for_run(seconds: f64) -> Self {
        let warmup = (seconds * 0.15).clamp(20.0, 60.0);
        let slots = f64::from(CYCLE + 1);
        Schedule {
            warmup,
            slot: ((seconds - warmup) / slots).clamp(SHORTEST_SLOT, FULL_SLOT),
        }
    }

    /// The shortest run whose resource checks can run (with a warm-up of this run's length).
    fn shortest_run(self) -> f64 {
        self.warmup + f64::from(CYCLE + 1) * SHORTEST_SLOT
    }

    /// When the first key rotation comes, after the run's start. Rotations come every 30 s; the
    /// interesting ones land in a key-endpoint window (a token signed with a key the server
    /// cannot fetch yet: 503, not 401). In a run of 165 s, the first comes 30 s after the start,
    /// 5 s into the first window (500), and the next at the start of the second (hang).
    /// With 25 s slots the same start would put every rotation outside the 10 s windows (at
    /// 10, 15, 20 s into the slots of a two-minute run), so a shorter run has its first
    /// rotation 1 s into the first slot: the next comes 6 s into the second.
    fn first_rotation(self) -> Duration {
        if self.slot >= FULL_SLOT {
            ROTATE_EVERY
        } else {
            Duration::from_secs_f64(self.warmup + 1.0)
        }
    }

    /// How long the key endpoint fails at the start of each slot.
    fn window(self) -> f64 {
        self.slot - HOLD - QUIET
    }

    fn index(self, tau: f64) -> u64 {
        (tau / self.slot) as u64
    }

    fn jwks_fault(self, tau: f64) -> JwksFault {
        if tau < 0.0 || tau % self.slot >= self.window() {
            return JwksFault::Normal;
        }
        match self.index(tau) % u64::from(CYCLE) {
            0 => JwksFault::Status500,
            1 => JwksFault::Hang,
            _ => JwksFault::Garbage,
        }
    }

    fn backend_fault(self, tau: f64) -> BackendFault {
        if tau < 0.0 {
            return BackendFault::Normal;
        }
        // Where in a 20 s window this moment falls.
        match (tau % self.slot) * 20.0 / self.window() {
            t if (2.0..5.0).contains(&t) => BackendFault::RateLimited,
            t if (8.0..11.0).contains(&t) => BackendFault::ServerError,
            t if (14.0..17.0).contains(&t) => BackendFault::Hang,
            _ => BackendFault::Normal,
        }
    }

    fn quiet(self, tau: f64) -> bool {
        tau < 0.0 || tau % self.slot >= self.slot - QUIET
    }

    /// The slot whose quiet end this moment falls in, if it does (not during the warm-up).
    fn quiet_end_of(self, tau: f64) -> Option<u64> {
        (tau >= 0.0 && self.quiet(tau)).then(|| self.index(tau))
    }
}

/// Which server a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Oidc,
    Quickstart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    ValidJwt,
    ValidOpaque,
    Expired,
    WrongAudience,
    Garbage,
}

impl Kind {
    fn valid(self) -> bool {
        matches!(self, Kind::ValidJwt | Kind::ValidOpaque)
    }
}

/// A valid token in use.
struct Valid {
    token: String,
    user: String,
    opaque: bool,
    /// Stop sending it from then on (old key withdrawn soon, or out of the cache window).
    retire_at: Mutex<Option<Instant>>,
    minted: Instant,
    first_ok: OnceLock<Instant>,
}

impl Valid {
    /// Whether the server's cached state covers this token now: it was answered 200 before
    /// (its key is cached; an opaque token's identity is cached for 60 s after that).
    fn covered(&self) -> bool {
        match self.first_ok.get() {
            None => false,
            Some(t) => !self.opaque || t.elapsed() < OPAQUE_COVER,
        }
    }
    fn in_use(&self) -> bool {
        let retire = *self.retire_at.lock().unwrap();
        retire.is_none_or(|r| Instant::now() < r)
            && (!self.opaque || self.minted.elapsed() < OPAQUE_USE)
    }
}

#[derive(Default)]
struct Pool {
    valid: Mutex<Vec<Arc<Valid>>>,
    invalid: Mutex<Vec<(Kind, String)>>,
}

impl Pool {
    fn pick_valid(&self, opaque: Option<bool>) -> Option<Arc<Valid>> {
        let valid = self.valid.lock().unwrap();
        let usable: Vec<&Arc<Valid>> = valid
            .iter()
            .filter(|v| v.in_use() && opaque.is_none_or(|o| v.opaque == o))
            .collect();
        if usable.is_empty() {
            return None;
        }
        Some(usable[rand::rng().random_range(0..usable.len())].clone())
    }
    fn pick_invalid(&self, kind: Kind) -> Option<String> {
        let invalid = self.invalid.lock().unwrap();
        let of: Vec<&String> = invalid
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, t)| t)
            .collect();
        (!of.is_empty()).then(|| of[rand::rng().random_range(0..of.len())].clone())
    }
}

/// Server, token kind, how the request was sent, and the status (or "no answer").
type Outcome = (Target, Kind, &'static str, String);

/// Outcome counts, and the violations seen (each with a count and one example).
#[derive(Default)]
struct Tally {
    counts: Mutex<BTreeMap<Outcome, u64>>,
    violations: Mutex<BTreeMap<String, (u64, String)>>,
}

impl Tally {
    fn count(&self, target: Target, kind: Kind, how: &'static str, outcome: String) {
        *self
            .counts
            .lock()
            .unwrap()
            .entry((target, kind, how, outcome))
            .or_default() += 1;
    }
    fn violation(&self, what: String, example: String) {
        let mut v = self.violations.lock().unwrap();
        let entry = v.entry(what).or_insert((0, example));
        entry.0 += 1;
    }
}

/// One answer, as the client saw it.
struct Answer {
    status: u16,
    retry_after: bool,
    body: String,
}

/// Judges one answer for a token of `kind` and records it.
fn judge(
    tally: &Tally,
    target: Target,
    kind: Kind,
    how: &'static str,
    valid: Option<&Valid>,
    covered: bool,
    answer: Result<Answer, String>,
) {
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            tally.count(target, kind, how, "no answer".into());
            tally.violation(
                format!("{target:?} {kind:?} ({how}): no answer"),
                e.chars().take(200).collect(),
            );
            return;
        }
    };
    tally.count(target, kind, how, answer.status.to_string());
    let label = format!("{target:?} {kind:?} ({how})");
    match answer.status {
        200 if kind.valid() => {
            let v = valid.expect("a valid token");
            if !answer.body.contains(&v.user) {
                tally.violation(format!("{label}: 200 for another user"), answer.body);
                return;
            }
            let _ = v.first_ok.set(Instant::now());
        }
        200 => tally.violation(format!("{label}: 200 for an invalid token"), answer.body),
        401 if kind.valid() => {
            tally.violation(format!("{label}: 401 for a valid token"), answer.body)
        }
        401 => {}
        503 if !answer.retry_after => {
            tally.violation(format!("{label}: 503 without Retry-After"), answer.body)
        }
        503 if covered => tally.violation(
            format!("{label}: 503 although its cached state covers it"),
            answer.body,
        ),
        503 => {}
        other => tally.violation(format!("{label}: HTTP {other}"), answer.body),
    }
}

struct Ctx {
    oidc_url: String,
    qs_url: String,
    issuer_admin: String,
    admin: reqwest::Client,
    proxy: Arc<Proxy>,
    pools: [Pool; 2],
    tally: Tally,
    stop: AtomicBool,
    sent: AtomicU64,
    skipped: AtomicU64,
}

impl Ctx {
    fn pool(&self, t: Target) -> &Pool {
        &self.pools[t as usize]
    }
    fn url(&self, t: Target) -> &str {
        match t {
            Target::Oidc => &self.oidc_url,
            Target::Quickstart => &self.qs_url,
        }
    }

    async fn admin_post(&self, path: &str, body: Value) -> Value {
        let resp = self
            .admin
            .post(format!("{}{path}", self.issuer_admin))
            .bearer_auth(SECRET)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("issuer {path}: {e}"));
        assert!(
            resp.status().is_success(),
            "issuer {path}: {}",
            resp.status()
        );
        resp.json().await.expect("JSON from the issuer")
    }

    async fn mint(&self, user: &str, resource: &str, format: &str, lifetime: u64) -> String {
        let v = self
            .admin_post(
                "/admin/tokens/access",
                json!({"user_id": user, "client_id": "soak", "scopes": ["profile", "email"],
                       "resource": resource, "format": format, "lifetime_secs": lifetime}),
            )
            .await;
        v["token"].as_str().expect("a token").to_owned()
    }

    /// Fresh valid tokens for every server; `jwt` ones use the current key.
    async fn mint_valid(&self, jwt: bool, opaque: bool) {
        for i in 0..USERS {
            let user = format!("user_soak{i}{}", rand::rng().random_range(1000..9999));
            let mut fresh = Vec::new();
            if jwt {
                for target in [Target::Oidc, Target::Quickstart] {
                    let token = self.mint(&user, self.url(target), "jwt", 3600).await;
                    fresh.push((target, token, false));
                }
            }
            if opaque {
                let token = self.mint(&user, &self.qs_url, "opaque", 3600).await;
                fresh.push((Target::Quickstart, token, true));
            }
            for (target, token, opaque) in fresh {
                let v = Arc::new(Valid {
                    token,
                    user: user.clone(),
                    opaque,
                    retire_at: Mutex::new(None),
                    minted: Instant::now(),
                    first_ok: OnceLock::new(),
                });
                let mut pool = self.pool(target).valid.lock().unwrap();
                pool.retain(|v| v.in_use());
                pool.push(v);
            }
        }
    }

    /// Rotates the issuer's key; tokens signed with the old one are sent until shortly before
    /// its grace period ends.
    async fn rotate(&self) {
        let v = self.admin_post("/admin/rotate_keys", json!({})).await;
        let kid = v["kid"].as_str().expect("a kid").to_owned();
        let retire = Instant::now() + GRACE - GRACE_MARGIN;
        for target in [Target::Oidc, Target::Quickstart] {
            for t in self.pool(target).valid.lock().unwrap().iter() {
                if !t.opaque {
                    t.retire_at.lock().unwrap().get_or_insert(retire);
                }
            }
        }
        self.proxy.rotated(&kid);
        self.mint_valid(true, false).await;
    }
}

/// One request through a pooled HTTP client.
async fn send(client: &reqwest::Client, url: &str, token: &str) -> Result<Answer, String> {
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .bearer_auth(token)
        .body(BODY)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let retry_after = resp.headers().contains_key("retry-after");
    let body = resp.text().await.map_err(|e| e.to_string())?;
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

fn raw_request(url: &str, token: &str) -> (String, Vec<u8>) {
    let authority = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         MCP-Protocol-Version: 2025-06-18\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    (authority, request.into_bytes())
}

/// A whole request sent one byte at a time, then its answer read.
async fn send_byte_by_byte(url: &str, token: &str) -> Result<Answer, String> {
    let (authority, request) = raw_request(url, token);
    let mut stream = TcpStream::connect(&authority)
        .await
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    for byte in request {
        // The server may answer before the body is complete (a refusal needs no body) and
        // close: then the answer is read below.
        if stream.write_all(&[byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut answer = Vec::new();
    if let Err(e) = stream.read_to_end(&mut answer).await
        && answer.is_empty()
    {
        return Err(e.to_string());
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {:?}", &text[..text.len().min(100)]))?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Ok(Answer {
        status,
        retry_after: head.to_ascii_lowercase().contains("\r\nretry-after:"),
        body: body.to_owned(),
    })
}

/// A client that goes away: after half the body, or after the whole request without reading.
async fn disconnect(url: &str, token: &str, whole: bool) {
    let (authority, request) = raw_request(url, token);
    let Ok(mut stream) = TcpStream::connect(&authority).await else {
        return;
    };
    let cut = if whole {
        request.len()
    } else {
        request.len() - BODY.len() / 2
    };
    let _ = stream.write_all(&request[..cut]).await;
    drop(stream);
}

async fn one_request(ctx: Arc<Ctx>, client: reqwest::Client, target: Target) {
    let pool = ctx.pool(target);
    let roll = rand::rng().random_range(0..100);
    let kind = match roll {
        0..70 => {
            if target == Target::Quickstart && roll % 2 == 0 {
                Kind::ValidOpaque
            } else {
                Kind::ValidJwt
            }
        }
        70..80 => Kind::Expired,
        80..90 => Kind::WrongAudience,
        _ => Kind::Garbage,
    };
    ctx.sent.fetch_add(1, Ordering::Relaxed);
    if kind.valid() {
        let Some(v) = pool.pick_valid(Some(kind == Kind::ValidOpaque)) else {
            ctx.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let covered = v.covered();
        let answer = send(&client, ctx.url(target), &v.token).await;
        judge(
            &ctx.tally,
            target,
            kind,
            "pooled",
            Some(&*v),
            covered,
            answer,
        );
    } else {
        let Some(token) = pool.pick_invalid(kind) else {
            ctx.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let answer = send(&client, ctx.url(target), &token).await;
        judge(&ctx.tally, target, kind, "pooled", None, false, answer);
    }
}

/// Requests at `rate` per second to `target` until stopped (open loop: a slow answer does not
/// slow the offered load).
async fn load(ctx: Arc<Ctx>, target: Target, rate: f64) {
    let client = client();
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(512));
    while !ctx.stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            ctx.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let ctx = ctx.clone();
        let client = client.clone();
        tokio::spawn(async move {
            one_request(ctx, client, target).await;
            drop(permit);
        });
    }
}

/// Misbehaving clients, a few per second: byte-by-byte senders (judged like any request) and
/// clients that disconnect mid-request.
async fn bad_clients(ctx: Arc<Ctx>) {
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    let mut turn = 0u64;
    while !ctx.stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        turn += 1;
        let target = if turn.is_multiple_of(2) {
            Target::Oidc
        } else {
            Target::Quickstart
        };
        let Some(v) = ctx.pool(target).pick_valid(None) else {
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let url = ctx.url(target).to_owned();
            match turn % 3 {
                0 => {
                    let covered = v.covered();
                    let answer = tokio::time::timeout(
                        Duration::from_secs(30),
                        send_byte_by_byte(&url, &v.token),
                    )
                    .await
                    .unwrap_or_else(|_| Err("no answer within 30 s".into()));
                    let kind = if v.opaque {
                        Kind::ValidOpaque
                    } else {
                        Kind::ValidJwt
                    };
                    judge(
                        &ctx.tally,
                        target,
                        kind,
                        "byte by byte",
                        Some(&*v),
                        covered,
                        answer,
                    );
                }
                1 => disconnect(&url, &v.token, false).await,
                _ => disconnect(&url, &v.token, true).await,
            }
        });
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .expect("an HTTP client")
}

/// Closed-loop maximum: `workers` clients back to back with one valid token for `secs`.
async fn max_throughput(url: &str, token: &str, secs: u64) -> f64 {
    let client = client();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (client, stop, done) = (client.clone(), stop.clone(), done.clone());
        let (url, token) = (url.to_owned(), token.to_owned());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if matches!(send(&client, &url, &token).await, Ok(a) if a.status == 200) {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start = done.load(Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let n = done.load(Ordering::Relaxed) - start;
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    rate
}

struct Args {
    seconds: u64,
    bin_dir: PathBuf,
    out: PathBuf,
}

fn args() -> Args {
    let mut a = Args {
        seconds: 600,
        bin_dir: PathBuf::from("target/debug"),
        out: PathBuf::from("target/soak"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => a.seconds = value.parse().expect("--seconds N"),
            "--bin-dir" => a.bin_dir = value.into(),
            "--out" => a.out = value.into(),
            other => panic!("unknown flag {other} (--seconds, --bin-dir, --out)"),
        }
    }
    a
}

#[derive(Clone, Copy)]
struct Sample {
    tau: f64,
    usage: [Usage; 2],
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = args();
    std::fs::create_dir_all(&args.out).expect("the output directory");
    let schedule = Schedule::for_run(args.seconds as f64);

    // The proxy first: the issuer's public URL is the proxy's.
    let proxy_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy_listener.local_addr().unwrap());
    let issuer_port = free_port();
    let issuer_admin = format!("http://127.0.0.1:{issuer_port}");
    let proxy = Proxy::new(issuer_admin.clone(), GRACE);
    let app = proxy.router();
    tokio::spawn(async move { axum::serve(proxy_listener, app).await });

    let admin = reqwest::Client::new();
    let mut issuer = Server::start(
        "mcp-auth-issuer",
        &bin(&args.bin_dir, "mcp-auth-issuer"),
        &[
            "--ephemeral".into(),
            "--port".into(),
            issuer_port.to_string(),
            "--public-url".into(),
            proxy_url.clone(),
            "--secret-key".into(),
            SECRET.into(),
            "--rate-limit".into(),
            "1000000".into(),
        ],
        &[],
        &args.out.join("issuer.log"),
    );
    wait_ready(
        &admin,
        &format!("{issuer_admin}/.well-known/jwks.json"),
        &mut issuer,
    )
    .await;
    let jwks: Value = admin
        .get(format!("{issuer_admin}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    proxy.rotated(jwks["keys"][0]["kid"].as_str().expect("a first key"));

    let oidc_port = free_port();
    let mut oidc = Server::start(
        "oidc-resource-server",
        &bin(&args.bin_dir, "oidc-resource-server"),
        &[
            "--issuer".into(),
            proxy_url.clone(),
            "--jwks-url".into(),
            format!("{proxy_url}/.well-known/jwks.json"),
            "--port".into(),
            oidc_port.to_string(),
        ],
        &[],
        &args.out.join("oidc-resource-server.log"),
    );
    let qs_port = free_port();
    let host = proxy_url.trim_start_matches("http://");
    let publishable = format!(
        "pk_test_{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(format!("{host}$"))
    );
    let mut quickstart = Server::start(
        "quickstart",
        &bin(&args.bin_dir, "quickstart"),
        &["--port".into(), qs_port.to_string()],
        &[
            ("CLERK_SECRET_KEY", SECRET.into()),
            ("CLERK_PUBLISHABLE_KEY", publishable),
            ("CLERK_API_URL", proxy_url.clone()),
            ("CLERK_FRONTEND_API_URL", proxy_url.clone()),
        ],
        &args.out.join("quickstart.log"),
    );
    let oidc_url = format!("http://127.0.0.1:{oidc_port}/mcp");
    let qs_url = format!("http://127.0.0.1:{qs_port}/mcp");
    for (server, port) in [(&mut oidc, oidc_port), (&mut quickstart, qs_port)] {
        let url = format!("http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp");
        wait_ready(&admin, &url, server).await;
    }
    let pids = [oidc.pid, quickstart.pid];

    let ctx = Arc::new(Ctx {
        oidc_url: oidc_url.clone(),
        qs_url: qs_url.clone(),
        issuer_admin,
        admin,
        proxy: proxy.clone(),
        pools: [Pool::default(), Pool::default()],
        tally: Tally::default(),
        stop: AtomicBool::new(false),
        sent: AtomicU64::new(0),
        skipped: AtomicU64::new(0),
    });

    // Invalid tokens. Expired ones are minted with the issuer's clock an hour back, so they
    // are expired by the wall clock (JWTs) and by the issuer's (opaque).
    ctx.admin_post("/admin/clock/rewind", json!({"seconds": 3600}))
        .await;
    for target in [Target::Oidc, Target::Quickstart] {
        let url = ctx.url(target).to_owned();
        let mut invalid = vec![(
            Kind::Expired,
            ctx.mint("user_soakold", &url, "jwt", 60).await,
        )];
        if target == Target::Quickstart {
            invalid.push((
                Kind::Expired,
                ctx.mint("user_soakold", &url, "opaque", 60).await,
            ));
        }
        ctx.pool(target).invalid.lock().unwrap().extend(invalid);
    }
    ctx.admin_post("/admin/clock/advance", json!({"seconds": 3600}))
        .await;
    let elsewhere = "http://127.0.0.1:1/elsewhere/mcp";
    for target in [Target::Oidc, Target::Quickstart] {
        let good = ctx.mint("user_soakx", ctx.url(target), "jwt", 3600).await;
        let mut invalid = vec![
            (
                Kind::WrongAudience,
                ctx.mint("user_soakx", elsewhere, "jwt", 3600).await,
            ),
            (Kind::Garbage, "garbage".to_owned()),
            (
                Kind::Garbage,
                format!("oat_{:032x}", rand::rng().random::<u128>()),
            ),
            (Kind::Garbage, tamper(&good)),
            (Kind::Garbage, alg_none(&good)),
        ];
        if target == Target::Quickstart {
            invalid.push((
                Kind::WrongAudience,
                ctx.mint("user_soakx", elsewhere, "opaque", 3600).await,
            ));
        }
        ctx.pool(target).invalid.lock().unwrap().extend(invalid);
    }
    ctx.mint_valid(true, true).await;

    // Maximum throughput of each server with a valid JWT, no faults; the soak runs at half.
    // Both are measured at the same time, as they run in the soak: measured one after the
    // other, each had the whole machine, so half of each, offered together, was all of it, and
    // the servers spent much of the soak at the in-flight cap, which is overload, not the
    // faults under test (a run of 2026-12-01 on a fast machine, 7,462 and 6,693 req/s measured
    // apart, held 532 and 446 descriptors at its baseline, a quiet moment).
    let token = |target| {
        ctx.pool(target)
            .pick_valid(Some(false))
            .unwrap()
            .token
            .clone()
    };
    let (oidc_token, quickstart_token) = (token(Target::Oidc), token(Target::Quickstart));
    let rates = {
        let (oidc_rate, quickstart_rate) = tokio::join!(
            max_throughput(ctx.url(Target::Oidc), &oidc_token, 5),
            max_throughput(ctx.url(Target::Quickstart), &quickstart_token, 5),
        );
        [oidc_rate, quickstart_rate]
    };
    println!(
        "max throughput (closed loop, 32 clients each, both servers at once, 5 s): oidc {:.0} req/s, quickstart {:.0} req/s; soak at half",
        rates[0], rates[1]
    );

    let started = Instant::now();
    let total = Duration::from_secs(args.seconds);
    let tau = move || started.elapsed().as_secs_f64() - schedule.warmup;
    let mut workers = vec![
        tokio::spawn(load(ctx.clone(), Target::Oidc, (rates[0] / 2.0).max(1.0))),
        tokio::spawn(load(
            ctx.clone(),
            Target::Quickstart,
            (rates[1] / 2.0).max(1.0),
        )),
        tokio::spawn(bad_clients(ctx.clone())),
    ];
    // Faults, rotations, fresh opaque tokens, and one resource sample per second.
    let mut samples: Vec<Sample> = Vec::new();
    let mut next_rotation = started + schedule.first_rotation();
    let mut next_opaque = started + Duration::from_secs(20);
    let mut rotations = 0;
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    let mut last_sample = started;
    while started.elapsed() < total {
        ticker.tick().await;
        let t = tau();
        *proxy.jwks_fault.lock().unwrap() = schedule.jwks_fault(t);
        *proxy.backend_fault.lock().unwrap() = schedule.backend_fault(t);
        if Instant::now() >= next_rotation {
            ctx.rotate().await;
            rotations += 1;
            next_rotation += ROTATE_EVERY;
        }
        if Instant::now() >= next_opaque {
            ctx.mint_valid(false, true).await;
            next_opaque += Duration::from_secs(20);
        }
        if last_sample.elapsed() >= Duration::from_secs(1) {
            last_sample = Instant::now();
            samples.push(Sample {
                tau: t,
                usage: [usage(pids[0]), usage(pids[1])],
            });
        }
        if !oidc.alive() || !quickstart.alive() {
            ctx.tally
                .violation("a server exited during the soak".into(), String::new());
            break;
        }
    }
    ctx.stop.store(true, Ordering::Relaxed);
    *proxy.jwks_fault.lock().unwrap() = JwksFault::Normal;
    *proxy.backend_fault.lock().unwrap() = BackendFault::Normal;
    for w in workers.drain(..) {
        let _ = w.await;
    }
    // In-flight requests end (each has a 30 s timeout), then the clients are gone.
    let drain = Instant::now();
    while Arc::strong_count(&ctx) > 1 && drain.elapsed() < Duration::from_secs(35) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    write_samples(&args.out.join("samples.tsv"), &samples);
    let report = report(&ctx, &samples, schedule, pids, &rates, rotations, started);
    std::fs::write(args.out.join("report.txt"), &report).ok();
    println!("{report}");
    let failed = !ctx.tally.violations.lock().unwrap().is_empty();
    if failed {
        println!("SOAK FAILED");
        std::process::ExitCode::FAILURE
    } else {
        println!("SOAK PASSED");
        std::process::ExitCode::SUCCESS
    }
}

/// Every resource sample, one line each, so that a failed resource check can be read as a step
/// (a high-water mark) or a trend (a leak) afterwards.
fn write_samples(path: &std::path::Path, samples: &[Sample]) {
    use std::fmt::Write;
    let mut out = String::from("tau_s");
    for name in ["oidc", "quickstart"] {
        let _ = write!(
            out,
            "\t{name}_rss_kib\t{name}_fds\t{name}_established\t{name}_in_transition\t{name}_unlisted"
        );
    }
    out.push('\n');
    for s in samples {
        let _ = write!(out, "{:.1}", s.tau);
        for u in &s.usage {
            let _ = write!(
                out,
                "\t{}\t{}\t{}\t{}\t{}",
                u.rss_kib, u.fds, u.established, u.in_transition, u.unlisted
            );
        }
        out.push('\n');
    }
    std::fs::write(path, out).ok();
}

/// Each server's mean resident memory at the quiet end of each slot: a leak shows as a trend,
/// a high-water mark as a step.
fn quiet_ends(samples: &[Sample], schedule: Schedule) -> String {
    let mut slots: BTreeMap<u64, ([u64; 2], u64)> = BTreeMap::new();
    for s in samples {
        let Some(index) = schedule.quiet_end_of(s.tau) else {
            continue;
        };
        let slot = slots.entry(index).or_default();
        slot.0[0] += s.usage[0].rss_kib;
        slot.0[1] += s.usage[1].rss_kib;
        slot.1 += 1;
    }
    ["oidc", "quickstart"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let levels: Vec<String> = slots
                .values()
                .map(|(rss, n)| format!("{:.1}", rss[i] as f64 / *n as f64 / 1024.0))
                .collect();
            format!("{name} {}", levels.join(" "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The report, with the resource checks (which record their own violations).
fn report(
    ctx: &Ctx,
    samples: &[Sample],
    schedule: Schedule,
    pids: [u32; 2],
    rates: &[f64; 2],
    rotations: u32,
    started: Instant,
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let elapsed = started.elapsed().as_secs_f64();
    let sent = ctx.sent.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "soak: {elapsed:.0} s (warm-up {:.0} s, {:.0} s slots), {sent} requests offered at half of the measured maximum \
         (oidc {:.0}/s, quickstart {:.0}/s), {} not sent (no token of that kind yet, or 512 in flight), {rotations} key rotations",
        schedule.warmup,
        schedule.slot,
        rates[0] / 2.0,
        rates[1] / 2.0,
        ctx.skipped.load(Ordering::Relaxed),
    );
    let c = &ctx.proxy.counts;
    let _ = writeln!(
        out,
        "proxy: key endpoint {} forwarded, {} failed on purpose; Backend API {} forwarded, {} failed on purpose",
        c.jwks_forwarded.load(Ordering::Relaxed),
        c.jwks_faulted.load(Ordering::Relaxed),
        c.backend_forwarded.load(Ordering::Relaxed),
        c.backend_faulted.load(Ordering::Relaxed),
    );
    let _ = writeln!(out, "answers (server, token, client, status: count):");
    for ((target, kind, how, status), n) in ctx.tally.counts.lock().unwrap().iter() {
        let _ = writeln!(out, "  {target:?} {kind:?} {how} {status}: {n}");
    }

    // Resources. A fault window piles up connections (requests held on a hung upstream until
    // their timeouts, retries after a 503) and raises the allocator's high-water mark; how far
    // depends on the window's kind and on how fast the machine is, and the first window of a
    // kind can set a new mark once. A run on a fast CI machine (3,000+ requests a second per
    // server) failed this check with both servers about 5 MiB higher after the first garbage
    // window than after the first hang window, and nothing else wrong. So the baseline is the
    // quiet end (nothing failed for 8 s) of the slot in which the last kind of fault had its
    // first window, and every later quiet sample is compared with it: growth after that is
    // growth the faults already seen do not explain. (A stall of the machine that leaves the
    // servers behind the load after that can still set a new mark and fail the check: resident
    // memory cannot tell that from a leak; the per-slot levels printed here show a step or a
    // trend.) Then the end state, after every client is gone, against the same baseline.
    let _ = writeln!(
        out,
        "RSS at each slot's quiet end, MiB (baseline: slot {}): {}",
        CYCLE - 1,
        quiet_ends(samples, schedule)
    );
    for (i, name) in ["oidc-resource-server", "quickstart"].iter().enumerate() {
        let base: Vec<&Usage> = samples
            .iter()
            .filter(|s| schedule.quiet_end_of(s.tau) == Some(u64::from(CYCLE - 1)))
            .map(|s| &s.usage[i])
            .collect();
        let later: Vec<&Usage> = samples
            .iter()
            .filter(|s| {
                schedule
                    .quiet_end_of(s.tau)
                    .is_some_and(|slot| slot >= u64::from(CYCLE))
            })
            .map(|s| &s.usage[i])
            .collect();
        let all_later: Vec<&Usage> = samples
            .iter()
            .filter(|s| s.tau >= 0.0)
            .map(|s| &s.usage[i])
            .collect();
        if base.is_empty() || later.is_empty() {
            let _ = writeln!(
                out,
                "{name}: too short for resource checks (they need a run of {:.0} s or more)",
                schedule.shortest_run(),
            );
            continue;
        }
        let mean = |v: &[&Usage], f: fn(&Usage) -> u64| {
            v.iter().map(|u| f(u) as f64).sum::<f64>() / v.len() as f64
        };
        let max = |v: &[&Usage], f: fn(&Usage) -> u64| v.iter().map(|u| f(u)).max().unwrap_or(0);
        let rss0 = mean(&base, |u| u.rss_kib);
        let fd0 = mean(&base, |u| u.fds);
        let est0 = mean(&base, |u| u.established);
        let rss_max = max(&later, |u| u.rss_kib);
        let fd_max = max(&later, |u| u.fds);
        let end = usage(pids[i]);
        let _ = writeln!(
            out,
            "{name}: RSS {:.1} MiB at the baseline, at most {:.1} MiB when quiet later ({:.1} MiB at worst during faults); \
             fds {fd0:.0} at the baseline, at most {fd_max} when quiet later ({} at worst during faults); \
             established connections {est0:.0} at the baseline; at most {} sockets opening or closing and {} in no TCP table in a quiet sample; \
             at the end (clients gone): {} fds, {} established, {} opening or closing, {} in no TCP table, {:.1} MiB ({} quiet samples)",
            rss0 / 1024.0,
            rss_max as f64 / 1024.0,
            max(&all_later, |u| u.rss_kib) as f64 / 1024.0,
            max(&all_later, |u| u.fds),
            max(&later, |u| u.in_transition),
            max(&later, |u| u.unlisted),
            end.fds,
            end.established,
            end.in_transition,
            end.unlisted,
            end.rss_kib as f64 / 1024.0,
            later.len(),
        );
        if rss_max as f64 > rss0 * 1.10 {
            ctx.tally.violation(
                format!("{name}: RSS grew more than 10 % over the baseline"),
                format!("{:.1} -> {:.1} MiB", rss0 / 1024.0, rss_max as f64 / 1024.0),
            );
        }
        // Descriptors other than client connections: how many clients happen to be connected
        // at a quiet moment depends on the load generator and the machine, not on the server,
        // so counting them made the check fail on a busy machine with nothing leaked; nor do
        // TCP sockets caught opening or closing at that moment (the ten-minute run of
        // 2026-11-30 failed on one sample with 24 descriptors over the baseline and nothing
        // left at the end; the states were not recorded then, these are the likely ones); nor
        // sockets in no TCP table (a 120 s run of 2026-11-30 failed on one quiet sample with
        // ten more of them than the baseline, the same 119 descriptors in all, and 14 at the
        // end: connections the clients had just reset, which the kernel unhashes at once and
        // the server closes when it next reads them). What a leak looks like stays in: files,
        // pipes, listeners, runtime handles; sockets stuck half-closed or reset are caught at
        // the end, below, when every client is gone. Within 10 %, and at least 4 descriptors
        // of slack, since the count is small (about a dozen).
        let held = |u: &Usage| {
            u.fds
                .saturating_sub(u.established)
                .saturating_sub(u.in_transition)
                .saturating_sub(u.unlisted)
        };
        let held0 = mean(&base, held);
        let held_max = max(&later, held);
        if held_max as f64 > held0 + (held0 * 0.10).max(4.0) {
            ctx.tally.violation(
                format!(
                    "{name}: descriptors other than client connections grew more than 10 % over the baseline"
                ),
                format!("{held0:.0} -> {held_max} (all descriptors: {fd0:.0} -> {fd_max})"),
            );
        }
        if end.fds as f64 > fd0 * 1.10 || end.established as f64 > est0 * 1.10 {
            ctx.tally.violation(
                format!("{name}: descriptors or connections not back to the baseline at the end"),
                format!(
                    "fds {fd0:.0} -> {}, established {est0:.0} -> {}",
                    end.fds, end.established
                ),
            );
        }
    }
    let violations = ctx.tally.violations.lock().unwrap();
    let _ = writeln!(out, "violations: {}", violations.len());
    for (what, (n, example)) in violations.iter() {
        let _ = writeln!(out, "  {what}: {n} (e.g. {example:?})");
    }
    out
}

/// The token with one signature character changed (in the middle, so it changes the bytes).
fn tamper(jwt: &str) -> String {
    let mut parts: Vec<String> = jwt.split('.').map(str::to_owned).collect();
    let sig = &mut parts[2];
    let mid = sig.len() / 2;
    let c = if &sig[mid..=mid] == "A" { "B" } else { "A" };
    sig.replace_range(mid..=mid, c);
    parts.join(".")
}

/// The same claims with `alg: none` and no signature.
fn alg_none(jwt: &str) -> String {
    let payload = jwt.split('.').nth(1).unwrap_or_default();
    let header =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt"}"#);
    format!("{header}.{payload}.")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slot every 10 ms: the moment's offset into the slot (s) and the faults then.
    fn faults(schedule: Schedule, slot: u64) -> Vec<(f64, JwksFault, BackendFault)> {
        let start = slot as f64 * schedule.slot;
        (0..(schedule.slot * 100.0) as u64)
            .map(|i| start + i as f64 / 100.0)
            .map(|tau| {
                (
                    tau - start,
                    schedule.jwks_fault(tau),
                    schedule.backend_fault(tau),
                )
            })
            .collect()
    }

    #[test]
    fn runs_of_165_seconds_or_more_keep_the_issues_schedule() {
        for seconds in [165.0, 600.0, 3600.0] {
            let schedule = Schedule::for_run(seconds);
            assert_eq!(schedule.slot, 35.0, "{seconds} s");
            assert_eq!(schedule.window(), 20.0);
            assert_eq!(schedule.jwks_fault(0.0), JwksFault::Status500);
            assert_eq!(schedule.jwks_fault(19.9), JwksFault::Status500);
            assert_eq!(schedule.jwks_fault(20.0), JwksFault::Normal);
            assert_eq!(schedule.jwks_fault(35.0), JwksFault::Hang);
            assert_eq!(schedule.jwks_fault(70.0), JwksFault::Garbage);
            assert_eq!(schedule.jwks_fault(105.0), JwksFault::Status500);
            assert_eq!(schedule.backend_fault(2.0), BackendFault::RateLimited);
            assert_eq!(schedule.backend_fault(10.9), BackendFault::ServerError);
            assert_eq!(schedule.backend_fault(14.0), BackendFault::Hang);
            assert_eq!(schedule.backend_fault(17.0), BackendFault::Normal);
            assert!(!schedule.quiet(27.9) && schedule.quiet(28.0));
        }
    }

    #[test]
    fn a_two_minute_run_has_its_baseline_and_a_slot_after_it() {
        let schedule = Schedule::for_run(120.0);
        assert_eq!(schedule.warmup, 20.0);
        assert_eq!(schedule.slot, 25.0);
        assert_eq!(schedule.shortest_run(), 120.0);
        // The warm-up, the baseline's slots and one more fit in the run.
        assert!(schedule.warmup + f64::from(CYCLE + 1) * schedule.slot <= 120.0);
        // Shorter runs are too short for the resource checks, and say so.
        assert!(Schedule::for_run(110.0).shortest_run() > 110.0);
        // The samples compared: the last 7 s of each slot, none from the warm-up.
        assert_eq!(schedule.quiet_end_of(-1.0), None);
        assert_eq!(schedule.quiet_end_of(2.0 * 25.0 + 17.9), None);
        assert_eq!(schedule.quiet_end_of(2.0 * 25.0 + 18.0), Some(2));
        assert_eq!(schedule.quiet_end_of(3.0 * 25.0 + 24.9), Some(3));
    }

    /// The key-endpoint faults the run's rotations land in.
    fn rotations_in_windows(seconds: f64) -> Vec<JwksFault> {
        let schedule = Schedule::for_run(seconds);
        let first = schedule.first_rotation().as_secs_f64() - schedule.warmup;
        (0..)
            .map(|k| first + f64::from(k) * ROTATE_EVERY.as_secs_f64())
            .take_while(|tau| *tau < seconds - schedule.warmup)
            .map(|tau| schedule.jwks_fault(tau))
            .filter(|fault| *fault != JwksFault::Normal)
            .collect()
    }

    #[test]
    fn key_rotations_land_in_key_endpoint_outages() {
        // The case a rotation during an outage tests: a token signed with a key the server
        // cannot fetch yet. As in a 165 s run, the 500 and the hang windows each have one.
        for seconds in [120.0, 165.0] {
            assert_eq!(
                rotations_in_windows(seconds),
                [JwksFault::Status500, JwksFault::Hang],
                "{seconds} s"
            );
        }
    }

    #[test]
    fn every_run_length_has_each_fault_in_the_baselines_slots_and_quiet_ends_after_a_hold() {
        for seconds in [120.0, 130.0, 145.0, 160.0, 165.0, 600.0] {
            let schedule = Schedule::for_run(seconds);
            let mut kinds = Vec::new();
            for slot in 0..u64::from(CYCLE) {
                let faults = faults(schedule, slot);
                for kind in [
                    BackendFault::RateLimited,
                    BackendFault::ServerError,
                    BackendFault::Hang,
                ] {
                    assert!(
                        faults.iter().any(|f| f.2 == kind),
                        "{seconds} s, slot {slot}: no {kind:?}"
                    );
                }
                kinds.extend(
                    faults
                        .iter()
                        .map(|f| f.1)
                        .filter(|k| *k != JwksFault::Normal),
                );
                // The quiet part starts at least HOLD after the slot's last fault, and lasts
                // QUIET seconds.
                let last_fault = faults
                    .iter()
                    .filter(|f| f.1 != JwksFault::Normal || f.2 != BackendFault::Normal)
                    .map(|f| f.0)
                    .fold(0.0, f64::max);
                let first_quiet = faults
                    .iter()
                    .find(|f| schedule.quiet(slot as f64 * schedule.slot + f.0))
                    .map(|f| f.0)
                    .unwrap();
                assert!(first_quiet - last_fault >= HOLD - 0.02, "{seconds} s");
                assert!(
                    (schedule.slot - first_quiet - QUIET).abs() < 0.02,
                    "{seconds} s"
                );
            }
            for kind in [JwksFault::Status500, JwksFault::Hang, JwksFault::Garbage] {
                assert!(kinds.contains(&kind), "{seconds} s: no {kind:?}");
            }
        }
    }
}
