//! The HTML pages: the consent screen (a plain form that works without JavaScript) and the error
//! page for requests that must not be redirected. Self-contained: inline CSS, no scripts, no
//! external resources besides the client's own logo.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::clients::MetadataDocument;
use crate::users::User;

/// Escape text for HTML element content and double-quoted attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Plain-language description of a scope.
pub(crate) fn describe_scope(scope: &str) -> String {
    match scope {
        "openid" => "Confirm who you are".into(),
        "profile" => "See your name, username and profile picture".into(),
        "email" => "See your email address".into(),
        "offline_access" => "Stay connected when you are not using it (refresh tokens)".into(),
        "public_metadata" => "Read your public metadata".into(),
        "private_metadata" => "Read your private metadata".into(),
        other => format!("Use the permission “{other}”"),
    }
}

const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1f2328;background:#f3f4f6}
.dev{background:#fff7d6;color:#6b4e00;border-bottom:1px solid #f0d78c;text-align:center;padding:6px 12px;font-size:13px}
main{max-width:440px;margin:40px auto;background:#fff;border:1px solid #e5e7eb;border-radius:14px;box-shadow:0 8px 24px rgba(15,23,42,.08);padding:28px}
.app{text-align:center;margin-bottom:20px}
.logo{width:56px;height:56px;border-radius:12px;margin:0 auto 12px;display:flex;align-items:center;justify-content:center;background:#4f46e5;color:#fff;font-size:26px;font-weight:600;object-fit:cover}
h1{font-size:19px;font-weight:600;margin:0 0 4px}
h2{font-size:13px;text-transform:uppercase;letter-spacing:.04em;color:#6b7280;margin:20px 0 8px;font-weight:600}
.muted{color:#6b7280;font-size:13px;margin:0;word-break:break-all}
ul.scopes{list-style:none;padding:0;margin:0}
ul.scopes li{padding:8px 0 8px 28px;position:relative;border-bottom:1px solid #f1f2f4}
ul.scopes li:last-child{border-bottom:0}
ul.scopes li:before{content:"✓";position:absolute;left:4px;color:#16a34a;font-weight:700}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f3f4f6;padding:2px 6px;border-radius:6px;word-break:break-all}
fieldset{border:0;padding:0;margin:0}
legend{padding:0}
label.user{display:flex;align-items:center;gap:12px;padding:10px 12px;border:1px solid #e5e7eb;border-radius:10px;margin-bottom:8px;cursor:pointer}
label.user:hover{border-color:#c7d2fe;background:#f8f9ff}
label.user:has(input:checked){border-color:#4f46e5;background:#eef2ff}
label.user img{width:36px;height:36px;border-radius:50%}
label.user span{display:flex;flex-direction:column;line-height:1.3}
label.user small{color:#6b7280}
.actions{display:flex;gap:12px;margin-top:24px}
button{flex:1;padding:11px 16px;border-radius:10px;font-size:15px;font-weight:600;cursor:pointer;border:1px solid transparent}
button.allow{background:#4f46e5;color:#fff}
button.allow:hover{background:#4338ca}
button.deny{background:#fff;color:#374151;border-color:#d1d5db}
button.deny:hover{background:#f9fafb}
.resource{margin:0}
.note{margin-top:18px;font-size:12px;color:#6b7280;text-align:center}
.error h1{color:#b91c1c}
ul.forget{padding-left:18px}
ul.forget li{margin-bottom:10px}
ul.forget code{word-break:normal;overflow-wrap:break-word}
"#;

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{} · mcp-auth-issuer</title><style>{STYLE}</style></head><body>\
         <div class=\"dev\">mcp-auth-issuer — local development and test authorization server. Not for production.</div>\
         {body}</body></html>\n",
        escape(title)
    )
}

/// Security headers for every HTML page: no framing (clickjacking), no caching, no scripts.
fn html_response(status: StatusCode, html: String) -> Response {
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: http: data:; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// An error shown to the person at the browser (unknown client, bad redirect URI, bad CSRF token).
pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!(
        "<main class=\"error\"><div class=\"app\"><h1>{}</h1></div><p>{}</p>\
         <p class=\"note\">The application was not told about this error because its identity or \
         return address could not be trusted. Close this page and start again from the application.</p></main>",
        escape(title),
        escape(message)
    );
    html_response(status, page(title, &body))
}

/// How each client forgets a registration it cached, checked against each client's own words:
/// - Cursor: the Command Palette command `Cursor: Clear All MCP Tokens` (named in vendors' MCP
///   troubleshooting pages for Cursor, e.g. Kernel's "Cursor clean reset").
/// - Claude Code: `/mcp` → the server → "Clear authentication" (the panel's action, see
///   anthropics/claude-code issue 10915), or `claude mcp remove` and `claude mcp add`.
/// - VS Code: `Authentication: Remove Dynamic Authentication Providers`, also under the Accounts
///   menu as "Manage Dynamic Authentication Providers" (microsoft/vscode issues 269379, 283744).
/// - MCP Inspector: "Authentication Settings" → "Clear OAuth State"
///   (inspector `client/src/components/AuthDebugger.tsx`).
/// - mcp-remote: `rm -rf ~/.mcp-auth`, or the directory `MCP_REMOTE_CONFIG_DIR` names
///   (mcp-remote README, "Clear your ~/.mcp-auth directory").
const FORGET_REGISTRATION: [(&str, &str, &str); 5] = [
    (
        "cursor",
        "Cursor",
        "Open the Command Palette (⌘/Ctrl+Shift+P), run <code>Cursor: Clear All MCP Tokens</code>, then connect to the server again.",
    ),
    (
        "claude-code",
        "Claude Code",
        "Run <code>/mcp</code>, select this server, choose <em>Clear authentication</em>, then <em>Authenticate</em>. Or remove and add it again: <code>claude mcp remove NAME</code>, then <code>claude mcp add --transport http NAME URL</code>.",
    ),
    (
        "vscode",
        "VS Code",
        "Run <code>Authentication: Remove Dynamic Authentication Providers</code> from the Command Palette (also in the Accounts menu as <em>Manage Dynamic Authentication Providers</em>), remove this server's entry, then start the server again.",
    ),
    (
        "inspector",
        "MCP Inspector",
        "In <em>Authentication Settings</em>, press <em>Clear OAuth State</em>, then connect again.",
    ),
    (
        "mcp-remote",
        "mcp-remote",
        "Stop it, delete its cache with <code>rm -rf ~/.mcp-auth</code> (or the directory <code>MCP_REMOTE_CONFIG_DIR</code> names), and start it again.",
    ),
];

/// The page for an authorization request whose `client_id` nobody registered here: usually a
/// client that registered before the issuer's state was deleted (or with an in-memory state,
/// before a restart) and still holds that registration. It says so and how each client forgets
/// it; a client that registers again (RFC 7591) simply succeeds.
pub(crate) fn unknown_client_page(client_id: &str, persistent: bool) -> Response {
    let why = if persistent {
        "Most likely this authorization server's state was deleted (its state directory, \
         <code>.mcp-auth/</code> for the quickstart) after the application registered, and the \
         application still remembers that old registration."
    } else {
        "This authorization server keeps its state in memory (<code>--ephemeral</code>), so a \
         restart forgets every registration; the application still remembers its old one."
    };
    let steps: String = FORGET_REGISTRATION
        .iter()
        .map(|(id, name, how)| {
            format!("<li data-client=\"{id}\"><strong>{name}</strong>: {how}</li>")
        })
        .collect();
    let title = "This application is not registered here";
    let body = format!(
        "<main class=\"error\" id=\"unknown-client\"><div class=\"app\"><h1>{title}</h1></div>\
         <p>The application that sent you here presented the client id \
         <code id=\"client-id\">{}</code>, which this authorization server does not know.</p>\
         <p>{why}</p>\
         <h2>What to do</h2>\
         <p>Make the application forget its registration for this server. It then registers \
         again on its own and brings you back here to sign in:</p>\
         <ul class=\"forget\">{steps}</ul>\
         <p class=\"note\">Nothing was sent back to the application: an unknown client's return \
         address cannot be trusted. Close this page once you have done the above.</p></main>",
        escape(client_id),
    );
    html_response(StatusCode::BAD_REQUEST, page(title, &body))
}

/// What the consent page shows and resubmits.
pub(crate) struct ConsentView<'a> {
    pub(crate) app_name: &'a str,
    pub(crate) logo_uri: Option<&'a str>,
    /// For a metadata-document client: where the document came from, and its home page.
    pub(crate) document: Option<&'a MetadataDocument>,
    /// Every redirect URI is on loopback: anything on the user's machine could be behind it.
    pub(crate) localhost_only: bool,
    pub(crate) redirect_uri: &'a str,
    pub(crate) scopes: &'a [String],
    pub(crate) resource: Option<&'a str>,
    pub(crate) users: &'a [User],
    pub(crate) base_url: &'a str,
    /// Hidden `(name, value)` pairs, CSRF token included.
    pub(crate) hidden: Vec<(&'static str, String)>,
}

/// The consent screen.
pub(crate) fn consent_page(view: &ConsentView<'_>) -> Response {
    let app = escape(view.app_name);
    let logo = match view.logo_uri {
        Some(uri) => format!("<img class=\"logo\" src=\"{}\" alt=\"\">", escape(uri)),
        None => {
            let initial: String = view
                .app_name
                .chars()
                .find(|c| c.is_alphanumeric())
                .map(|c| c.to_uppercase().collect())
                .unwrap_or_else(|| "?".into());
            format!(
                "<div class=\"logo\" aria-hidden=\"true\">{}</div>",
                escape(&initial)
            )
        }
    };
    let target = url::Url::parse(view.redirect_uri)
        .ok()
        .map(|u| match (u.host_str(), u.port()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}", u.scheme()),
            (Some(host), None) => format!("{}://{host}", u.scheme()),
            (None, _) => format!("{}:", u.scheme()),
        })
        .unwrap_or_else(|| view.redirect_uri.to_owned());
    let scopes: String = view
        .scopes
        .iter()
        .map(|s| {
            format!(
                "<li data-scope=\"{}\">{}</li>",
                escape(s),
                escape(&describe_scope(s))
            )
        })
        .collect();
    // Who vouches for a metadata-document client: the host serving its document (MCP
    // 2026-07-28 `basic/authorization/security-considerations.mdx` lines 93-99: show the
    // client's origin, and warn when its redirect URIs are all on localhost).
    let origin = view.document.map_or_else(String::new, |doc| {
        let home = doc.client_uri.as_deref().map_or_else(String::new, |uri| {
            format!(
                " · <a id=\"client-uri\" href=\"{0}\" rel=\"noopener noreferrer\">{0}</a>",
                escape(uri)
            )
        });
        let warning = if view.localhost_only {
            "<p class=\"muted\" id=\"localhost-warning\">This application runs on your computer \
             (it returns to a localhost address): allow it only if you started it yourself.</p>"
        } else {
            ""
        };
        format!(
            "<p class=\"muted\">Identified by its metadata document on \
             <strong id=\"client-host\">{}</strong>{home}</p>{warning}",
            escape(&doc.host)
        )
    });
    let resource = view.resource.map_or_else(String::new, |r| {
        format!(
            "<h2>Access limited to</h2><p class=\"resource\"><code>{}</code></p>",
            escape(r)
        )
    });
    let users: String = view
        .users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            format!(
                "<label class=\"user\"><input type=\"radio\" name=\"user_id\" value=\"{}\"{}>\
                 <img src=\"{}\" alt=\"\"><span><strong>{}</strong><small>{}</small></span></label>",
                escape(&u.id),
                if i == 0 { " checked" } else { "" },
                escape(&u.picture(view.base_url)),
                escape(&u.full_name()),
                escape(&u.email),
            )
        })
        .collect();
    let hidden: String = view
        .hidden
        .iter()
        .map(|(name, value)| {
            format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                escape(value)
            )
        })
        .collect();
    let body = format!(
        "<main><div class=\"app\">{logo}<h1><strong id=\"app-name\">{app}</strong> wants to access your account</h1>{origin}\
         <p class=\"muted\">You will be sent back to <code>{target}</code></p></div>\
         <form method=\"post\" action=\"/oauth/authorize\">\
         <h2>It will be able to</h2><ul class=\"scopes\">{scopes}</ul>{resource}\
         <fieldset><legend><h2>Sign in as</h2></legend>{users}</fieldset>{hidden}\
         <div class=\"actions\"><button type=\"submit\" name=\"decision\" value=\"deny\" class=\"deny\">Deny</button>\
         <button type=\"submit\" name=\"decision\" value=\"allow\" class=\"allow\">Allow</button></div>\
         </form><p class=\"note\">Only allow applications you trust. Local users are fictional; no password is needed.</p></main>",
        target = escape(&target),
    );
    html_response(
        StatusCode::OK,
        page(&format!("Authorize {}", view.app_name), &body),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn describes_known_and_custom_scopes() {
        assert_eq!(describe_scope("email"), "See your email address");
        assert!(describe_scope("mcp:tools").contains("mcp:tools"));
    }
}
