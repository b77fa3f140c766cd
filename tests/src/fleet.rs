//! A real fleet on loopback: `redis-server` (optional), the local issuer handing out opaque
//! tokens, N quickstart replicas in Clerk mode pointed at it (separate processes, so one can be
//! killed with SIGKILL), and `haproxy` in front of them running `deploy/haproxy.cfg`.
//!
//! ```ignore
//! // In this crate's integration tests only: `fleet!` names the replica binary through
//! // `CARGO_BIN_EXE_quickstart-replica`, which Cargo defines for those and not for doctests.
//! # async fn run() {
//! let fleet = e2e::fleet!().replicas(3).start().await;
//! let url = fleet.url(); // through haproxy
//! # }
//! ```
//!
//! Everything listens on 127.0.0.1. Replicas bind port 0 and report the port they got;
//! haproxy and Redis cannot, so their ports are taken free from the OS just before they start.
//! Every process is killed when the [`Fleet`] is dropped (SIGKILL; nothing to clean up but a
//! temporary directory, removed too).
//!
//! `redis-server` and `haproxy` are Debian packages; `scripts/test.sh` installs them when they
//! are missing. Without them the fleet fails to start with a message saying so (never skips).

use std::{
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use mcp_auth_issuer::{Issuer, IssuerConfig, IssuerHandle, MintRequest, TokenFormat};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    process::{Child, Command},
};

use crate::TempDir;

/// Starts a fleet whose replicas are this workspace's quickstart (the e2e crate's
/// `quickstart-replica` binary, which is `quickstart::cli::main`). Usable only from the e2e
/// crate's integration tests, where Cargo names the binary's path.
#[macro_export]
macro_rules! fleet {
    () => {
        $crate::fleet::Fleet::builder(env!("CARGO_BIN_EXE_quickstart-replica"))
    };
}

/// Longest wait for any process to come up, or for haproxy to see a change.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What the per-replica argument function sees.
#[derive(Debug, Clone)]
pub struct FleetInfo {
    /// The URL clients connect to (haproxy), which every replica gets as `--public-url`.
    pub public_url: String,
    /// `redis://127.0.0.1:PORT`, when the fleet has Redis.
    pub redis_url: Option<String>,
    /// The issuer's base URL (Frontend and Backend API).
    pub issuer_url: String,
}

type ArgsFn = Box<dyn Fn(usize, &FleetInfo) -> Vec<String> + Send + Sync>;

/// Configures a [`Fleet`]. Defaults: 3 replicas, no Redis, opaque tokens, the issuer's default
/// configuration otherwise, replicas with no extra arguments.
#[must_use]
pub struct FleetBuilder {
    binary: PathBuf,
    replicas: usize,
    redis: bool,
    args: ArgsFn,
    env: Vec<(String, String)>,
    issuer: IssuerConfig,
}

impl FleetBuilder {
    /// How many replicas.
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n;
        self
    }

    /// Starts `redis-server` too (its URL is in [`FleetInfo::redis_url`] and
    /// [`Fleet::redis_url`]); the replicas get it only through [`args`](Self::args).
    pub fn redis(mut self, enabled: bool) -> Self {
        self.redis = enabled;
        self
    }

    /// Extra command-line arguments of replica `i` (0-based), after the fleet's own
    /// (`--host`, `--port`, `--public-url`).
    pub fn args(
        mut self,
        f: impl Fn(usize, &FleetInfo) -> Vec<String> + Send + Sync + 'static,
    ) -> Self {
        self.args = Box::new(f);
        self
    }

    /// The same extra arguments for every replica.
    pub fn common_args<I, S>(self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let args: Vec<String> = args.into_iter().map(Into::into).collect();
        self.args(move |_, _| args.clone())
    }

    /// An environment variable for every replica (e.g. `RUST_LOG`).
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Changes the issuer's configuration (rate limit, token lifetime, ...). The token format
    /// (opaque) and default audience (the fleet's URL) are set after this.
    pub fn issuer(mut self, f: impl FnOnce(&mut IssuerConfig)) -> Self {
        f(&mut self.issuer);
        self
    }

    /// Starts everything and waits until haproxy sees every replica up.
    ///
    /// # Panics
    /// When a program is missing or something does not start in time; the message says what.
    pub async fn start(self) -> Fleet {
        let dir = TempDir::new("fleet");
        let lb_port = free_port();
        let stats_port = free_port();
        let public_url = format!("http://127.0.0.1:{lb_port}/mcp");

        let redis = if self.redis {
            Some(Redis::start(&dir.0).await)
        } else {
            None
        };

        let mut config = self.issuer;
        config.token_format = TokenFormat::Opaque;
        config.default_audience = Some(public_url.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the issuer");
        let issuer = Issuer::serve(listener, config)
            .await
            .expect("the issuer starts");

        let info = FleetInfo {
            public_url: public_url.clone(),
            redis_url: redis.as_ref().map(Redis::url),
            issuer_url: issuer.base_url(),
        };
        let mut replicas = Vec::with_capacity(self.replicas);
        for i in 0..self.replicas {
            let mut args: Vec<String> = vec![
                "--host".into(),
                "127.0.0.1".into(),
                "--port".into(),
                "0".into(),
                "--public-url".into(),
                public_url.clone(),
            ];
            args.extend((self.args)(i, &info));
            replicas.push(Replica::start(&self.binary, i, &args, &self.env, &issuer).await);
        }

        let config_path = dir.0.join("haproxy.cfg");
        let addrs: Vec<SocketAddr> = replicas.iter().map(|r| r.addr).collect();
        std::fs::write(
            &config_path,
            haproxy_config(&read_deploy_config(), lb_port, stats_port, &addrs),
        )
        .expect("write haproxy.cfg");
        let haproxy = spawn_haproxy(&config_path);

        let fleet = Fleet {
            replicas,
            haproxy,
            redis,
            issuer: Some(issuer),
            public_url,
            stats_url: format!("http://127.0.0.1:{stats_port}/stats;csv"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("an HTTP client"),
            _dir: dir,
        };
        fleet
            .wait_for_status(
                |s| s.iter().all(|(_, status)| status == "UP"),
                "every replica UP",
            )
            .await;
        fleet
    }
}

/// A running fleet. Dropping it kills every process.
pub struct Fleet {
    replicas: Vec<Replica>,
    haproxy: Child,
    redis: Option<Redis>,
    issuer: Option<IssuerHandle>,
    public_url: String,
    stats_url: String,
    http: reqwest::Client,
    _dir: TempDir,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("url", &self.public_url)
            .field(
                "replicas",
                &self.replicas.iter().map(|r| r.addr).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// A builder for a fleet of `binary` replicas (see [`fleet!`](crate::fleet!)).
    pub fn builder(binary: impl Into<PathBuf>) -> FleetBuilder {
        FleetBuilder {
            binary: binary.into(),
            replicas: 3,
            redis: false,
            args: Box::new(|_, _| Vec::new()),
            env: Vec::new(),
            issuer: IssuerConfig::default(),
        }
    }

    /// The MCP URL through haproxy (what clients use, and the tokens' audience).
    #[must_use]
    pub fn url(&self) -> &str {
        &self.public_url
    }

    /// The issuer (mint tokens, read its `/metrics`).
    ///
    /// # Panics
    /// Never while the fleet lives.
    #[must_use]
    pub fn issuer(&self) -> &IssuerHandle {
        self.issuer
            .as_ref()
            .expect("the issuer lives as long as the fleet")
    }

    /// An opaque access token for `user_id` with audience [`url`](Self::url) and the
    /// quickstart's challenge scopes, from client `client_id`.
    ///
    /// # Panics
    /// When the issuer refuses (an unknown user).
    #[must_use]
    pub fn token(&self, user_id: &str, client_id: &str) -> String {
        self.issuer()
            .mint_access_token(MintRequest {
                scopes: vec!["profile".into(), "email".into()],
                resource: Some(self.public_url.clone()),
                ..MintRequest::new(user_id.to_owned(), client_id)
            })
            .expect("mint an access token")
    }

    /// How many replicas were started (killed ones included).
    #[must_use]
    pub fn replica_count(&self) -> usize {
        self.replicas.len()
    }

    /// Where replica `i` listens (directly, bypassing haproxy).
    #[must_use]
    pub fn replica_addr(&self, i: usize) -> SocketAddr {
        self.replicas[i].addr
    }

    /// What replica `i` printed so far (banner, access lines), for failure messages.
    #[must_use]
    pub fn replica_output(&self, i: usize) -> String {
        self.replicas[i]
            .output
            .lock()
            .map(|o| o.join("\n"))
            .unwrap_or_default()
    }

    /// Kills replica `i` with SIGKILL (no graceful shutdown, as a crash or an OOM kill) and
    /// waits until the process is gone.
    pub async fn kill_replica(&mut self, i: usize) {
        let child = &mut self.replicas[i].child;
        let _ = child.start_kill();
        let _ = child.wait().await;
    }

    /// `redis://127.0.0.1:PORT`, when the fleet has Redis.
    #[must_use]
    pub fn redis_url(&self) -> Option<String> {
        self.redis.as_ref().map(Redis::url)
    }

    /// Kills Redis with SIGKILL and waits until it is gone.
    ///
    /// # Panics
    /// When the fleet has no Redis.
    pub async fn kill_redis(&mut self) {
        let redis = self.redis.as_mut().expect("the fleet has no Redis");
        let _ = redis.child.start_kill();
        let _ = redis.child.wait().await;
    }

    /// Starts Redis again on the same port (empty: it keeps nothing on disk) and waits until it
    /// answers.
    ///
    /// # Panics
    /// When the fleet has no Redis or it does not start.
    pub async fn restart_redis(&mut self) {
        let redis = self.redis.as_mut().expect("the fleet has no Redis");
        let _ = redis.child.start_kill();
        let _ = redis.child.wait().await;
        redis.child = Redis::spawn(&redis.dir, redis.port);
        Redis::wait_ready(redis.port).await;
    }

    /// haproxy's view of each replica: `(server name, status)`, status as in its statistics
    /// (`UP`, `DOWN`, `UP 1/2`, `DOWN 1/2`, `MAINT`, ...). Servers are named `replica1`..`replicaN`
    /// in start order.
    ///
    /// # Panics
    /// When haproxy's statistics page cannot be read.
    pub async fn backend_status(&self) -> Vec<(String, String)> {
        let csv = self
            .http
            .get(&self.stats_url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("haproxy statistics")
            .text()
            .await
            .expect("haproxy statistics body");
        parse_stats(&csv)
    }

    /// Waits (polling haproxy's statistics, at most 30 s) until `done` holds for the backend's
    /// servers.
    ///
    /// # Panics
    /// On timeout, with the last status seen.
    pub async fn wait_for_status(&self, done: impl Fn(&[(String, String)]) -> bool, what: &str) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let status = match self.http.get(&self.stats_url).send().await {
                Ok(r) => parse_stats(&r.text().await.unwrap_or_default()),
                Err(_) => Vec::new(),
            };
            if !status.is_empty() && done(&status) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "haproxy: waited 30 s for {what}; last status {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until haproxy marks replica `i` `DOWN` (its health check failed `fall` times).
    pub async fn wait_until_down(&self, i: usize) {
        let name = format!("replica{}", i + 1);
        self.wait_for_status(
            |s| {
                s.iter()
                    .any(|(n, status)| *n == name && status.starts_with("DOWN"))
            },
            &format!("{name} DOWN"),
        )
        .await;
    }
}

/// The protocol revision the plain-HTTP helpers speak (stateless calls need no `initialize`).
pub const PROTOCOL: &str = "2025-06-18";

/// `POST url` with one JSON-RPC `tools/call` of `tool` (no arguments), stateless, with
/// `token` as bearer. The transport errors (connection reset when a replica dies) are returned,
/// not unwrapped, so a test can count them.
///
/// # Errors
/// When the request gets no HTTP answer.
pub async fn call_tool(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    tool: &str,
) -> reqwest::Result<reqwest::Response> {
    http.post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", PROTOCOL)
        .bearer_auth(token)
        .body(format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
        ))
        .send()
        .await
}

impl Drop for Fleet {
    fn drop(&mut self) {
        // kill_on_drop covers the children; killing here makes the order explicit (the
        // load balancer first, so nothing is routed to a dying replica).
        let _ = self.haproxy.start_kill();
        for r in &mut self.replicas {
            let _ = r.child.start_kill();
        }
        if let Some(redis) = &mut self.redis {
            let _ = redis.child.start_kill();
        }
    }
}

/// A port the OS just had free on 127.0.0.1 (for programs that cannot report the port they
/// bound: haproxy, Redis). Another process could take it before ours binds it; on a test
/// machine that is rare, and the program then fails to start with a clear error.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A program from a Debian package, or a panic that says how to install it.
fn require_program(name: &str, package: &str) -> PathBuf {
    for dir in std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
    {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`{name}` is not installed: run ./scripts/test.sh (it installs the Debian package \
         `{package}`), or `apt-get install {package}`"
    );
}

struct Replica {
    child: Child,
    addr: SocketAddr,
    output: Arc<Mutex<Vec<String>>>,
}

impl Replica {
    async fn start(
        binary: &Path,
        index: usize,
        args: &[String],
        env: &[(String, String)],
        issuer: &IssuerHandle,
    ) -> Self {
        let mut cmd = Command::new(binary);
        cmd.args(args)
            // Clerk mode, pointed at the local issuer, exactly as a Clerk user configures it.
            .env("CLERK_SECRET_KEY", issuer.secret_key())
            .env("CLERK_PUBLISHABLE_KEY", issuer.publishable_key())
            .env("CLERK_API_URL", issuer.base_url())
            .env("CLERK_FRONTEND_API_URL", issuer.base_url())
            .env_remove("CLERK_MACHINE_ID")
            .env_remove("CLERK_MACHINE_SECRET_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = output.clone();
        tokio::spawn(async move {
            let mut tx = Some(tx);
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Some(addr) = line
                    .split("Listening on:")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|a| a.parse::<SocketAddr>().ok())
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr);
                }
                if let Ok(mut lines) = lines.lock() {
                    lines.push(line);
                }
            }
        });
        let lines = output.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Ok(mut lines) = lines.lock() {
                    lines.push(line);
                }
            }
        });
        let addr = match tokio::time::timeout(START_TIMEOUT, rx).await {
            Ok(Ok(addr)) => addr,
            _ => panic!(
                "replica {index} did not start; its output:\n{}",
                output.lock().map(|o| o.join("\n")).unwrap_or_default()
            ),
        };
        Self {
            child,
            addr,
            output,
        }
    }
}

struct Redis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    async fn start(dir: &Path) -> Self {
        let port = free_port();
        let dir = dir.join("redis");
        std::fs::create_dir_all(&dir).expect("create the Redis directory");
        let child = Self::spawn(&dir, port);
        Self::wait_ready(port).await;
        Self { child, port, dir }
    }

    fn spawn(dir: &Path, port: u16) -> Child {
        let program = require_program("redis-server", "redis-server");
        Command::new(program)
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                // Nothing on disk: a restart starts empty, as after losing the instance.
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start redis-server")
    }

    /// Until `PING` answers `+PONG`.
    async fn wait_ready(port: u16) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await
                && stream.write_all(b"PING\r\n").await.is_ok()
            {
                let mut buf = [0u8; 7];
                if stream.read_exact(&mut buf).await.is_ok() && &buf == b"+PONG\r\n" {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on port {port} within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

fn spawn_haproxy(config: &Path) -> Child {
    let program = require_program("haproxy", "haproxy");
    Command::new(program)
        // Foreground, no daemon; the configuration is checked at start.
        .arg("-db")
        .arg("-f")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start haproxy")
}

/// `deploy/haproxy.cfg`, the file operators run.
fn read_deploy_config() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/haproxy.cfg");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `deploy/haproxy.cfg` with the test's ports: the frontend on `lb_port`, statistics on
/// `stats_port`, and one `server` line per replica between the REPLICAS markers.
fn haproxy_config(
    template: &str,
    lb_port: u16,
    stats_port: u16,
    replicas: &[SocketAddr],
) -> String {
    const BEGIN: &str = "# BEGIN REPLICAS";
    const END: &str = "# END REPLICAS";
    // The markers as whole lines (indented), not as words in a comment.
    let marker = |m: &str| {
        template
            .find(&format!("\n    {m}\n"))
            .map(|i| i + 5)
            .unwrap_or_else(|| panic!("deploy/haproxy.cfg has no `    {m}` line"))
    };
    let (start, end) = (marker(BEGIN), marker(END));
    let indent = "    ";
    let mut servers = format!("{BEGIN}\n");
    for (i, addr) in replicas.iter().enumerate() {
        servers.push_str(&format!("{indent}server replica{} {addr}\n", i + 1));
    }
    servers.push_str(indent);
    let out = format!("{}{servers}{}", &template[..start], &template[end..]);
    assert!(out.contains("bind 127.0.0.1:8800") && out.contains("bind 127.0.0.1:8899"));
    out.replace("bind 127.0.0.1:8800", &format!("bind 127.0.0.1:{lb_port}"))
        .replace(
            "bind 127.0.0.1:8899",
            &format!("bind 127.0.0.1:{stats_port}"),
        )
}

/// `(server, status)` for the servers of the `mcp_replicas` backend, from haproxy's CSV
/// statistics.
fn parse_stats(csv: &str) -> Vec<(String, String)> {
    let mut lines = csv.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let columns: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    let col = |name: &str| columns.iter().position(|c| *c == name);
    let (Some(px), Some(sv), Some(st)) = (col("pxname"), col("svname"), col("status")) else {
        return Vec::new();
    };
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| {
            f.get(px) == Some(&"mcp_replicas")
                && !matches!(f.get(sv), Some(&"FRONTEND" | &"BACKEND") | None)
        })
        .filter_map(|f| Some(((*f.get(sv)?).to_owned(), (*f.get(st)?).to_owned())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The deploy file is what the tests run: only ports and the replica list change.
    #[test]
    fn config_keeps_the_deploy_file_and_fills_in_ports() {
        let template = read_deploy_config();
        let addrs: Vec<SocketAddr> = vec![
            "127.0.0.1:4001".parse().unwrap(),
            "127.0.0.1:4002".parse().unwrap(),
        ];
        let out = haproxy_config(&template, 5000, 5001, &addrs);
        assert!(out.contains("bind 127.0.0.1:5000"));
        assert!(out.contains("bind 127.0.0.1:5001"));
        assert!(out.contains("server replica1 127.0.0.1:4001\n"));
        assert!(out.contains("server replica2 127.0.0.1:4002\n"));
        assert!(!out.contains("server replica1 127.0.0.1:8801"));
        assert!(!out.contains("server replica3"));
        assert!(out.contains("stick store-response res.hdr(mcp-session-id)"));
        assert!(out.contains("uri /readyz"));
    }

    #[test]
    fn stats_csv_is_parsed() {
        let csv = "# pxname,svname,qcur,status,x\nmcp,FRONTEND,,OPEN,\nmcp_replicas,replica1,0,UP,\nmcp_replicas,replica2,0,DOWN 1/2,\nmcp_replicas,BACKEND,0,UP,\n";
        assert_eq!(
            parse_stats(csv),
            vec![
                ("replica1".to_owned(), "UP".to_owned()),
                ("replica2".to_owned(), "DOWN 1/2".to_owned())
            ]
        );
    }
}
