//! The MCP Inspector's CLI mode against the running quickstart, exactly as the README shows it
//! (`inspector --cli <mcp-url> --transport http --method tools/call --tool-name whoami --header
//! "Authorization: Bearer <token>"`), with a token minted by the embedded issuer for that user
//! and this resource: the printed result names the user. Without the header, and with a token
//! minted for another resource, the call fails.
//!
//! Which Inspector, and on which Node: the machine has Node 20. Inspector 2.x declares Node ≥
//! 22.19 (and depends on undici 8 and commander 15, which declare Node ≥ 22), and every
//! `@modelcontextprotocol/inspector` 1.x/0.14+ declares Node ≥ 22.7.5 because of its web UI.
//! The CLI itself has no such requirement: `inspector --cli` only launches
//! `@modelcontextprotocol/inspector-cli`'s code, and `@modelcontextprotocol/inspector-cli@1.0.3`
//! (no `engines`; deps: the MCP SDK, commander 13, express 5, spawn-rx) is byte-identical to the
//! `cli/build` directory of `@modelcontextprotocol/inspector@1.0.3`, including the `--cli`
//! launcher `build/cli.js`. So the test runs that package's `build/cli.js --cli …` on the
//! machine's Node 20: the same program as `npx @modelcontextprotocol/inspector@1 --cli …`,
//! without the ~150 MB web UI or a second Node runtime. (2.12 did start on Node 20, but outside
//! its declared support across three packages; not a base to build a test on.)

use std::{path::PathBuf, process::Output, time::Duration};

use mcp_auth_issuer::MintRequest;
use quickstart::{Options, Quickstart};
use serde_json::Value;

/// `build/` of the installed `@modelcontextprotocol/inspector-cli`.
fn inspector_build_dir() -> PathBuf {
    e2e::js_dir("@modelcontextprotocol/inspector-cli")
        .join("node_modules/@modelcontextprotocol/inspector-cli/build")
}

/// `inspector --cli <mcp_url> --transport http --method tools/call --tool-name whoami [--header …]`
async fn inspector_whoami(mcp_url: &str, authorization: Option<&str>) -> Output {
    let build = inspector_build_dir();
    let mut cmd = tokio::process::Command::new("node");
    // The working directory matters: to name itself, build/index.js checks whether
    // "../package.json" exists relative to the *working directory* (meaning: "I am the
    // inspector-cli package") and otherwise imports "../../package.json" (the umbrella package's
    // layout), which does not exist for the standalone package. Running from build/ makes the check
    // find inspector-cli's own package.json.
    cmd.current_dir(&build)
        .arg(build.join("cli.js"))
        .args(["--cli", mcp_url, "--transport", "http"])
        .args(["--method", "tools/call", "--tool-name", "whoami"])
        .kill_on_drop(true);
    if let Some(value) = authorization {
        cmd.arg("--header").arg(format!("Authorization: {value}"));
    }
    tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("the Inspector CLI hung")
        .expect("node could not be started")
}

fn describe(out: &Output) -> String {
    format!(
        "exit: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspector_cli_calls_whoami_with_a_bearer_token() {
    let qs = Quickstart::start(Options {
        opaque_tokens: false,
        ..Options::default()
    })
    .await
    .unwrap();
    let issuer = qs.issuer().unwrap();
    let user = issuer.users()[2].id.clone();
    let mint = |resource: &str| {
        issuer
            .mint_access_token(MintRequest {
                scopes: vec!["profile".into(), "email".into()],
                resource: Some(resource.to_owned()),
                ..MintRequest::new(&user, "mcp-inspector-e2e")
            })
            .unwrap()
    };

    // With the token: the tool ran as that user, for that client, with those scopes.
    let token = mint(qs.mcp_url());
    let out = inspector_whoami(qs.mcp_url(), Some(&format!("Bearer {token}"))).await;
    assert!(out.status.success(), "{}", describe(&out));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the Inspector printed no JSON result ({e}):\n{}",
            describe(&out)
        )
    });
    assert_eq!(result["isError"], false, "{result}");
    assert_eq!(result["content"][0]["text"], user.as_str(), "{result}");
    let structured = &result["structuredContent"];
    assert_eq!(structured["user_id"], user.as_str(), "{result}");
    assert_eq!(structured["client_id"], "mcp-inspector-e2e", "{result}");
    assert_eq!(
        structured["scopes"],
        serde_json::json!(["profile", "email"])
    );

    // Without the header: 401, the Inspector reports the failure and exits non-zero.
    let out = inspector_whoami(qs.mcp_url(), None).await;
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("a bearer token is required"),
        "{}",
        describe(&out)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&user));

    // A valid signature is not enough: a token minted for another resource (`aud`) is refused.
    let elsewhere = mint("http://127.0.0.1:1/mcp");
    let out = inspector_whoami(qs.mcp_url(), Some(&format!("Bearer {elsewhere}"))).await;
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&user));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid_token") && stderr.contains("audience"),
        "{}",
        describe(&out)
    );

    qs.shutdown().await;
}
