//! RFC 6750 §2.1: finding the bearer token in a request.
//!
//! Only the `Authorization` header counts. A token in the query string (§2.3) or in a form body
//! (§2.2) is refused: both leak into logs and browser history, and the MCP specification
//! requires the header.

use http::{HeaderMap, HeaderValue, Uri, header::AUTHORIZATION};

/// Longest token accepted, in bytes. Real access tokens are a few hundred bytes to a few
/// kilobytes; anything longer is refused before any parsing or hashing work is spent on it.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why the `Authorization` header could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BearerError {
    /// More than one `Authorization` header.
    #[error("more than one Authorization header")]
    MultipleHeaders,
    /// `Bearer` with no token after it.
    #[error("the Bearer credentials are empty")]
    Empty,
    /// The token is not RFC 6750 `b64token` (token68) syntax, or the header is not ASCII.
    #[error("the Bearer token is malformed")]
    Malformed,
    /// The token is longer than [`MAX_TOKEN_LEN`].
    #[error("the Bearer token is too long")]
    TooLong,
    /// An `access_token` parameter in the query string.
    #[error("access tokens are accepted only in the Authorization header, not in the query string")]
    TokenInQuery,
}

/// A bearer token found in a request: the header it came from and where the token starts.
#[derive(Clone)]
pub struct Bearer {
    header: HeaderValue,
    start: usize,
}

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer([redacted])")
    }
}

impl Bearer {
    /// The token.
    #[must_use]
    pub fn token(&self) -> &str {
        // `parse` accepted only visible ASCII, so `to_str` cannot fail here.
        self.header.to_str().map(|s| &s[self.start..]).unwrap_or("")
    }

    pub(crate) fn into_parts(self) -> (HeaderValue, usize) {
        (self.header, self.start)
    }
}

/// Finds the bearer token in `headers`.
///
/// Returns `Ok(None)` when there is no `Authorization` header or it uses another scheme
/// (RFC 6750 §3.1: the client "attempted using an unsupported authentication method", answered
/// with a challenge that carries no error code).
pub fn parse(headers: &HeaderMap, uri: &Uri) -> Result<Option<Bearer>, BearerError> {
    if uri.query().is_some_and(query_has_access_token) {
        return Err(BearerError::TokenInQuery);
    }
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BearerError::MultipleHeaders);
    }
    parse_value(value)
}

/// Parses one `Authorization` header value.
pub fn parse_value(value: &HeaderValue) -> Result<Option<Bearer>, BearerError> {
    let bytes = value.as_bytes();
    // Scheme is case-insensitive (RFC 9110 §11.1).
    const SCHEME: &[u8] = b"bearer";
    if bytes.len() < SCHEME.len() || !bytes[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return Ok(None);
    }
    let rest = &bytes[SCHEME.len()..];
    if rest.is_empty() {
        return Err(BearerError::Empty);
    }
    if rest[0] != b' ' {
        // `BearerX …` is some other scheme.
        return Ok(None);
    }
    let spaces = rest.iter().take_while(|b| **b == b' ').count();
    let start = SCHEME.len() + spaces;
    let token = &bytes[start..];
    if token.is_empty() {
        return Err(BearerError::Empty);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(BearerError::TooLong);
    }
    if !is_token68(token) {
        return Err(BearerError::Malformed);
    }
    Ok(Some(Bearer {
        header: value.clone(),
        start,
    }))
}

/// RFC 6750 §2.1 `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_token68(token: &[u8]) -> bool {
    let padding = token.iter().rev().take_while(|b| **b == b'=').count();
    let body = &token[..token.len() - padding];
    // Every request's token goes through here. Each 32-byte chunk is checked without an early
    // exit, which the compiler turns into vector compares (a per-byte loop with a branch, or a
    // table lookup, costs several instructions per byte of a kilobyte-sized JWT).
    !body.is_empty()
        && body
            .chunks(32)
            .all(|chunk| chunk.iter().fold(true, |ok, b| ok & is_b64token_char(*b)))
}

/// A `b64token` character before the trailing `=` padding. Combined with `|` rather than
/// `||`, so it has no branches.
#[inline]
fn is_b64token_char(b: u8) -> bool {
    let folded = b | 0x20; // ASCII letters to lower case; no other byte lands in a..=z.
    folded.is_ascii_lowercase()
        | b.is_ascii_digit()
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

/// Whether the query carries an `access_token` parameter. The query is
/// `application/x-www-form-urlencoded` (RFC 6750 §2.3), so the name is compared decoded:
/// `access%5Ftoken` is the same parameter.
fn query_has_access_token(query: &str) -> bool {
    url::form_urlencoded::parse(query.as_bytes()).any(|(name, _)| name == "access_token")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn uri() -> Uri {
        Uri::from_static("/mcp")
    }

    #[test]
    fn accepts_any_case_scheme_and_extra_spaces() {
        for v in ["Bearer abc.def-ghi_~+/==", "bearer abc", "BEARER   abc"] {
            let b = parse(&headers(&[v]), &uri()).unwrap().unwrap();
            assert!(v.ends_with(b.token()), "{v}");
        }
    }

    #[test]
    fn other_schemes_and_absence_mean_no_token() {
        assert!(parse(&headers(&[]), &uri()).unwrap().is_none());
        assert!(
            parse(&headers(&["Basic dXNlcjpwdw=="]), &uri())
                .unwrap()
                .is_none()
        );
        assert!(parse(&headers(&["Bearerx abc"]), &uri()).unwrap().is_none());
    }

    #[test]
    fn refuses_malformed_credentials() {
        let cases = [
            ("Bearer", BearerError::Empty),
            ("Bearer ", BearerError::Empty),
            ("Bearer a b", BearerError::Malformed),
            ("Bearer =abc", BearerError::Malformed),
            ("Bearer abc=d", BearerError::Malformed),
            ("Bearer a\"b", BearerError::Malformed),
        ];
        for (value, want) in cases {
            assert_eq!(
                parse(&headers(&[value]), &uri()).unwrap_err(),
                want,
                "{value}"
            );
        }
    }

    #[test]
    fn refuses_two_headers_and_query_tokens() {
        assert_eq!(
            parse(&headers(&["Bearer a", "Bearer b"]), &uri()).unwrap_err(),
            BearerError::MultipleHeaders
        );
        let q = Uri::from_static("/mcp?x=1&access_token=abc");
        assert_eq!(
            parse(&headers(&["Bearer a"]), &q).unwrap_err(),
            BearerError::TokenInQuery
        );
        let harmless = Uri::from_static("/mcp?not_access_token=abc");
        assert!(parse(&headers(&[]), &harmless).unwrap().is_none());
    }

    #[test]
    fn token68_accepts_exactly_the_rfc_6750_characters() {
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            assert_eq!(is_b64token_char(b), expected, "byte {b:#04x}");
            // Inside a long token too, where the check runs 32 bytes at a time.
            let mut token = vec![b'a'; 70];
            token[45] = b;
            assert_eq!(
                is_token68(&token),
                expected,
                "byte {b:#04x} in a long token"
            );
        }
        assert!(is_token68(b"abc=="));
        assert!(!is_token68(b"=="));
        assert!(!is_token68(b"ab=c"));
    }

    /// Fuzzing finding (fuzz target `bearer`): the query is form-encoded (RFC 6750 §2.3), so
    /// `access%5Ftoken` and `access_token` name the same parameter; the encoded spelling slipped
    /// past the refusal.
    #[test]
    fn refuses_query_tokens_however_the_name_is_encoded() {
        for query in [
            "/mcp?access%5Ftoken=abc",
            "/mcp?%61ccess_token=abc",
            "/mcp?x=1&access%5ftoken",
        ] {
            let q: Uri = query.parse().unwrap();
            assert_eq!(
                parse(&headers(&["Bearer a"]), &q).unwrap_err(),
                BearerError::TokenInQuery,
                "{query}"
            );
        }
        let harmless = Uri::from_static("/mcp?access%5Ftokens=abc&x=access_token");
        assert!(parse(&headers(&[]), &harmless).unwrap().is_none());
    }

    #[test]
    fn refuses_oversized_tokens() {
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert_eq!(
            parse(&headers(&[&long]), &uri()).unwrap_err(),
            BearerError::TooLong
        );
    }
}
