//! The quickstart binary's command line: `--cimd-allow-loopback` and `--cimd-root-ca FILE` reach
//! the embedded issuer, as they do on `mcp-auth-issuer`, so a client identified by a Client ID
//! Metadata Document served on this machine works against `cargo run -p quickstart`.
//!
//! Each test starts the real binary on free ports with its state in memory, reads the issuer's
//! URL from the banner, and asks the issuer's authorization endpoint about a document served
//! over HTTPS on loopback with a CA generated for the run.

#[path = "../../../crates/mcp-auth-issuer/tests/common/https.rs"]
mod https;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use https::DocumentServer;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_quickstart");
const REDIRECT: &str = "http://127.0.0.1:33421/callback";

/// A directory under the system temp dir, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "mcp-auth-quickstart-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The quickstart binary on free ports, state in memory, with `args`; returns it and the
/// embedded issuer's URL from its banner. Killed when dropped.
async fn spawn(args: &[&str], cwd: &Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["--port", "0", "--issuer-port", "0", "--ephemeral"])
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        // Never real Clerk keys from the environment: the embedded issuer must start.
        .env_remove("CLERK_SECRET_KEY")
        .env_remove("CLERK_PUBLISHABLE_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the quickstart binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let issuer = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.trim().strip_prefix("Authorization server:") {
                return rest.split_whitespace().next().map(str::to_owned);
            }
        }
        None
    })
    .await
    .expect("the quickstart printed its banner in time");
    match issuer {
        Some(issuer) => {
            // Keep draining stdout so the child never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            (child, issuer)
        }
        None => {
            let out = child.wait_with_output().await.unwrap();
            panic!(
                "the quickstart exited before serving: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// GET the issuer's authorization endpoint for `client_id`: (status, body).
async fn authorize(issuer: &str, client_id: &str) -> (u16, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = reqwest::Url::parse_with_params(
        &format!("{issuer}/oauth/authorize"),
        [
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("state", "st4te"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    let response = http.get(url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// With both flags the embedded issuer fetches a document served over HTTPS on loopback and
/// shows the consent page for it. Without `--cimd-allow-loopback` the loopback address is
/// refused; without `--cimd-root-ca` the document's certificate is not trusted. So each flag
/// is what makes the difference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cimd_flags_reach_the_embedded_issuer() {
    let documents = DocumentServer::start().await;
    let client_id = documents.document(
        &documents.base,
        "/client.json",
        json!({
            "client_name": "Loopback Metadata Client",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }),
        None,
    );
    let dir = TempDir::new("cimd");
    let ca = dir.0.join("ca.pem");
    std::fs::write(&ca, &documents.ca_pem).unwrap();
    let ca = ca.to_str().unwrap();

    let (_both, issuer) = spawn(&["--cimd-allow-loopback", "--cimd-root-ca", ca], &dir.0).await;
    let (status, body) = authorize(&issuer, &client_id).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Loopback Metadata Client"), "{body}");

    let (_no_opt_in, issuer) = spawn(&["--cimd-root-ca", ca], &dir.0).await;
    let (status, body) = authorize(&issuer, &client_id).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("is a loopback address"), "{body}");

    let before = documents.connections();
    let (_no_ca, issuer) = spawn(&["--cimd-allow-loopback"], &dir.0).await;
    let (status, body) = authorize(&issuer, &client_id).await;
    assert_eq!(status, 400, "{body}");
    assert!(!body.contains("is a loopback address"), "{body}");
    assert!(
        documents.connections() > before,
        "the loopback address was allowed: the issuer connected, and the TLS handshake failed"
    );
}

/// A root CA file that cannot be read, or holds no certificate, stops the start with a clear
/// error (naming the flag, or saying what is wrong with the file) instead of failing later, at
/// the first document fetch.
#[tokio::test]
async fn a_bad_cimd_root_ca_stops_the_start() {
    let dir = TempDir::new("bad-ca");
    let not_pem = dir.0.join("not.pem");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    let missing = dir.0.join("missing.pem");
    for (file, expected) in [
        (&missing, "cannot read --cimd-root-ca"),
        (&not_pem, "CIMD root certificate"),
    ] {
        let out = Command::new(BIN)
            .args(["--port", "0", "--issuer-port", "0", "--ephemeral"])
            .arg("--cimd-root-ca")
            .arg(file)
            .current_dir(&dir.0)
            .env("RUST_LOG", "warn")
            .env_remove("CLERK_SECRET_KEY")
            .env_remove("CLERK_PUBLISHABLE_KEY")
            .stdin(Stdio::null())
            // A quickstart that starts instead of failing must not outlive the test.
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(60), out)
            .await
            .expect("the quickstart exited in time")
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
}

/// `--help` documents both flags and their development-only rule.
#[test]
fn help_documents_the_cimd_flags() {
    let out = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(help.contains("--cimd-allow-loopback"), "{help}");
    assert!(help.contains("--cimd-root-ca <FILE>"), "{help}");
    assert!(help.contains("refused on a non-loopback address"), "{help}");
}
