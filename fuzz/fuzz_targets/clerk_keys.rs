//! Publishable-key decoding (`mcp_auth::clerk::PublishableKey::parse`): never panics, and never
//! yields a Frontend API host that Clerk's own parser would refuse or read differently.
//!
//! The reference is Clerk's `parsePublishableKey` (clerk/javascript,
//! `packages/shared/src/keys.ts`: `isPublishableKey` lines 185-208 and
//! `isValidDecodedPublishableKey` lines 88-99), written out below: the key starts with
//! `pk_live_` or `pk_test_`, splits on `_` into exactly three parts, the third decodes with the
//! browser's `atob` (`isomorphicAtob.ts`), and the decoded text ends in exactly one `$` and
//! contains a `.`. Our parser trims surrounding whitespace first (it reads environment
//! variables); the reference sees the trimmed key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_auth::clerk::PublishableKey;

/// WHATWG "forgiving-base64 decode" (what `atob` does): strip ASCII whitespace; drop one or two
/// trailing `=` when the length is a multiple of 4; a length of 1 modulo 4 or any character
/// outside `A-Za-z0-9+/` fails. Each decoded byte becomes one character (Latin-1).
fn atob(input: &str) -> Option<String> {
    let mut data: Vec<u8> = input
        .bytes()
        .filter(|b| !matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' '))
        .collect();
    if data.len() % 4 == 0 {
        if data.ends_with(b"==") {
            data.truncate(data.len() - 2);
        } else if data.ends_with(b"=") {
            data.truncate(data.len() - 1);
        }
    }
    if data.len() % 4 == 1 {
        return None;
    }
    let value = |b: u8| -> Option<u32> {
        Some(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for b in data {
        buffer = (buffer << 6) | value(b)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(char::from(((buffer >> bits) & 0xff) as u8));
        }
    }
    Some(out)
}

/// Clerk's `parsePublishableKey(key)`: `(live, frontendApi)` or `None`.
fn clerk_parse(key: &str) -> Option<(bool, String)> {
    let live = key.starts_with("pk_live_");
    if !live && !key.starts_with("pk_test_") {
        return None;
    }
    let parts: Vec<&str> = key.split('_').collect();
    if parts.len() != 3 || parts[2].is_empty() {
        return None;
    }
    let decoded = atob(parts[2])?;
    let host = decoded.strip_suffix('$')?;
    if host.contains('$') || !host.contains('.') {
        return None;
    }
    Some((live, host.to_owned()))
}

fuzz_target!(|key: &str| {
    let Ok(ours) = PublishableKey::parse(key) else {
        return;
    };
    let Some((live, host)) = clerk_parse(key.trim()) else {
        panic!("accepted a key Clerk refuses: {key:?} -> {ours:?}");
    };
    assert_eq!(ours.live, live, "{key:?}");
    assert_eq!(ours.frontend_api_url, format!("https://{host}"), "{key:?}");
    // The host is a host: it parses as the authority of an https URL, with nothing else.
    let url = url::Url::parse(&ours.frontend_api_url).expect("a URL");
    assert_eq!(url.path(), "/", "{key:?}");
    assert!(url.query().is_none() && url.fragment().is_none(), "{key:?}");
    assert!(
        url.username().is_empty() && url.password().is_none(),
        "{key:?}"
    );
});
