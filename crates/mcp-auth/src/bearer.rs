//! RFC 6750 §2.1: finding the bearer token in a request.
//!
//! Only the `Authorization` header counts. A token in the query string (§2.3) or in a form body
//! (§2.2) is refused: both leak into logs and browser history, and the MCP specification
//! requires the header. A token sent in more than one place is refused too (§2: clients "MUST
//! NOT use more than one method to transmit the token in each request").

use http::{
    HeaderMap, HeaderValue, Uri,
    header::{AUTHORIZATION, CONTENT_TYPE},
};

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
    /// An `access_token` parameter in an `application/x-www-form-urlencoded` body.
    #[error("access tokens are accepted only in the Authorization header, not in a form body")]
    TokenInBody,
    /// A token in more than one of the header, the query string and a form body.
    #[error(
        "the access token was sent in more than one place; send it only in the Authorization header"
    )]
    MultipleMethods,
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
        // `parse` accepted only `b64token` bytes (ASCII) from `start` on, so this cannot fail.
        // Only the token is checked: `HeaderValue::to_str` would check the whole header again,
        // byte by byte, each time the token is asked for.
        std::str::from_utf8(&self.header.as_bytes()[self.start..]).unwrap_or("")
    }

    pub(crate) fn into_parts(self) -> (HeaderValue, usize) {
        (self.header, self.start)
    }
}

/// Finds the bearer token in `headers`, refusing an `access_token` in the query string.
///
/// Returns `Ok(None)` when there is no `Authorization` header or it uses another scheme
/// (RFC 6750 §3.1: the client "attempted using an unsupported authentication method", answered
/// with a challenge that carries no error code).
///
/// This does not look at the body; [`parse_with_form`] does, for requests whose body is a form
/// ([`is_form`]).
pub fn parse(headers: &HeaderMap, uri: &Uri) -> Result<Option<Bearer>, BearerError> {
    parse_with_form(headers, uri, None)
}

/// Like [`parse`], and also refuses an `access_token` in `form_body`, the bytes of an
/// `application/x-www-form-urlencoded` body (`None` when the body is not a form).
///
/// A token in the query or the form alone is refused as [`BearerError::TokenInQuery`] or
/// [`BearerError::TokenInBody`]; a token in more than one place (header and query, header and
/// form, query and form) as [`BearerError::MultipleMethods`], whether or not the copies agree.
///
/// ```
/// use http::{HeaderMap, Uri};
/// use mcp_auth::bearer::{self, BearerError};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("authorization", "Bearer abc".parse().unwrap());
/// let uri = Uri::from_static("/mcp");
/// assert_eq!(
///     bearer::parse_with_form(&headers, &uri, Some(b"access_token=abc")).unwrap_err(),
///     BearerError::MultipleMethods,
/// );
/// assert_eq!(bearer::parse_with_form(&headers, &uri, Some(b"note=hi")).unwrap().unwrap().token(), "abc");
/// ```
pub fn parse_with_form(
    headers: &HeaderMap,
    uri: &Uri,
    form_body: Option<&[u8]>,
) -> Result<Option<Bearer>, BearerError> {
    parse_with_form_knowing(headers, uri, form_body, |_| false)
}

/// [`parse_with_form`], except that a token for which `checked` is true is known to be of
/// `b64token` syntax and is not checked again. `checked` must be true only for such tokens.
pub(crate) fn parse_with_form_knowing(
    headers: &HeaderMap,
    uri: &Uri,
    form_body: Option<&[u8]>,
    checked: fn(&[u8]) -> bool,
) -> Result<Option<Bearer>, BearerError> {
    let in_query = uri.query().is_some_and(|q| has_access_token(q.as_bytes()));
    let in_body = form_body.is_some_and(has_access_token);
    let header = parse_header(headers, checked);
    if !in_query && !in_body {
        return header;
    }
    // A malformed Bearer header still counts as a token sent there.
    let in_header = !matches!(header, Ok(None));
    match (in_header, in_query, in_body) {
        (false, true, false) => Err(BearerError::TokenInQuery),
        (false, false, true) => Err(BearerError::TokenInBody),
        _ => Err(BearerError::MultipleMethods),
    }
}

/// Whether the request's body is `application/x-www-form-urlencoded` (the only body RFC 6750
/// §2.2 lets a token travel in), so [`parse_with_form`] needs to see it. Parameters such as
/// `charset` and the case of the media type do not matter.
#[must_use]
pub fn is_form(headers: &HeaderMap) -> bool {
    const FORM: &[u8] = b"application/x-www-form-urlencoded";
    // Every Content-Type header counts: which one a handler reads is not ours to guess.
    headers.get_all(CONTENT_TYPE).iter().any(|value| {
        let value = value.as_bytes();
        // Every request asks, nearly always with `application/json`: a value too short to hold
        // the form's media type is told apart without the parsing below.
        value.len() >= FORM.len() && {
            let essence = value.split(|b| *b == b';').next().unwrap_or(&[]);
            essence.trim_ascii().eq_ignore_ascii_case(FORM)
        }
    })
}

fn parse_header(
    headers: &HeaderMap,
    checked: fn(&[u8]) -> bool,
) -> Result<Option<Bearer>, BearerError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BearerError::MultipleHeaders);
    }
    parse_value_knowing(value, checked)
}

/// Parses one `Authorization` header value.
pub fn parse_value(value: &HeaderValue) -> Result<Option<Bearer>, BearerError> {
    parse_value_knowing(value, |_| false)
}

fn parse_value_knowing(
    value: &HeaderValue,
    checked: fn(&[u8]) -> bool,
) -> Result<Option<Bearer>, BearerError> {
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
    if !checked(token) && !is_token68(token) {
        return Err(BearerError::Malformed);
    }
    Ok(Some(Bearer {
        header: value.clone(),
        start,
    }))
}

/// RFC 6750 §2.1 `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub(crate) fn is_token68(token: &[u8]) -> bool {
    let padding = token.iter().rev().take_while(|b| **b == b'=').count();
    let body = &token[..token.len() - padding];
    // Every request's token goes through here. Each 32-byte block is checked without an early
    // exit, which the compiler turns into vector compares (a per-byte loop with a branch, or a
    // table lookup, costs several instructions per byte of a kilobyte-sized JWT). Blocks of a
    // fixed size (an array, not a slice of any length) and a byte accumulator take about a
    // third fewer instructions than `chunks(32)` with a `bool` fold: 1,300 against 1,900 for
    // an 800-byte token, counted with callgrind.
    let mut blocks = body.chunks_exact(32);
    let mut bad = 0u8;
    for block in &mut blocks {
        let block: &[u8; 32] = block.try_into().unwrap_or(&[0; 32]);
        for &b in block {
            bad |= u8::from(!is_b64token_char(b));
        }
        if bad != 0 {
            return false;
        }
    }
    for &b in blocks.remainder() {
        bad |= u8::from(!is_b64token_char(b));
    }
    !body.is_empty() && bad == 0
}

/// A `b64token` character before the trailing `=` padding: a letter, `-` `.` `/` or a digit
/// (`-` to `9` is one run of ASCII), `+`, `_` or `~`. Two range checks and three compares,
/// combined with `|` rather than `||` so the loop above has no branches.
#[inline]
fn is_b64token_char(b: u8) -> bool {
    let folded = b | 0x20; // ASCII letters to lower case; no other byte lands in a..=z.
    (folded.wrapping_sub(b'a') < 26)
        | (b.wrapping_sub(b'-') <= b'9' - b'-')
        | (b == b'+')
        | (b == b'_')
        | (b == b'~')
}

/// Whether a query string or form body has an `access_token` parameter. Names are decoded as a
/// form handler decodes them (`+`, percent escapes), so `access%5Ftoken` is found too.
fn has_access_token(form: &[u8]) -> bool {
    const NAME: &str = "access_token";
    form.split(|b| *b == b'&').any(|pair| {
        let name = pair.split(|b| *b == b'=').next().unwrap_or(&[]);
        // Only names are decoded, never values (a token, or a large field); a name longer than
        // `access_token` with every byte escaped cannot decode to it.
        name.len() <= 3 * NAME.len()
            && url::form_urlencoded::parse(name).any(|(decoded, _)| decoded == NAME)
    })
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

    /// A token the caller vouches for (`checked`: what the verified-token memo holds) skips only
    /// the syntax check; every other refusal still applies, and other tokens are still checked.
    #[test]
    fn a_token_known_to_be_checked_skips_only_the_syntax_check() {
        fn knows_a_b(token: &[u8]) -> bool {
            token == b"a b"
        }
        let knowing = |values: &[&str]| {
            parse_with_form_knowing(&headers(values), &uri(), None, knows_a_b)
                .map(|b| b.map(|b| b.token().to_owned()))
        };
        assert_eq!(knowing(&["Bearer a b"]), Ok(Some("a b".to_owned())));
        assert_eq!(knowing(&["Bearer a c"]), Err(BearerError::Malformed));
        assert_eq!(knowing(&["Bearer abc"]), Ok(Some("abc".to_owned())));
        assert_eq!(
            knowing(&["Bearer a b", "Bearer a b"]),
            Err(BearerError::MultipleHeaders)
        );
        assert_eq!(knowing(&["Bearer "]), Err(BearerError::Empty));
        // The public parsers vouch for nothing.
        assert_eq!(
            parse(&headers(&["Bearer a b"]), &uri()).map(|b| b.is_some()),
            Err(BearerError::Malformed)
        );
    }

    #[test]
    fn refuses_two_headers_and_query_tokens() {
        assert_eq!(
            parse(&headers(&["Bearer a", "Bearer b"]), &uri()).unwrap_err(),
            BearerError::MultipleHeaders
        );
        let q = Uri::from_static("/mcp?x=1&access_token=abc");
        assert_eq!(
            parse(&headers(&[]), &q).unwrap_err(),
            BearerError::TokenInQuery
        );
        assert_eq!(
            parse(&headers(&["Bearer a"]), &q).unwrap_err(),
            BearerError::MultipleMethods
        );
        let harmless = Uri::from_static("/mcp?not_access_token=abc");
        assert!(parse(&headers(&[]), &harmless).unwrap().is_none());
    }

    #[test]
    fn a_token_in_more_than_one_place_is_refused() {
        let q = Uri::from_static("/mcp?access_token=abc");
        let form: Option<&[u8]> = Some(b"a=1&access_token=abc");
        let cases = [
            (
                &["Bearer a"][..],
                &uri(),
                form,
                BearerError::MultipleMethods,
            ),
            (&["Bearer a"][..], &q, None, BearerError::MultipleMethods),
            (&[][..], &q, form, BearerError::MultipleMethods),
            // A malformed header still counts as a token sent there.
            (&["Bearer a b"][..], &q, None, BearerError::MultipleMethods),
            (&[][..], &q, None, BearerError::TokenInQuery),
            (
                &["Basic dXNlcjpwdw=="][..],
                &q,
                None,
                BearerError::TokenInQuery,
            ),
            (&[][..], &uri(), form, BearerError::TokenInBody),
        ];
        for (values, uri, form, want) in cases {
            assert_eq!(
                parse_with_form(&headers(values), uri, form).unwrap_err(),
                want,
                "{values:?} {uri} {form:?}"
            );
        }
        let ok = parse_with_form(
            &headers(&["Bearer a"]),
            &uri(),
            Some(b"access_tokens=1&x=access_token"),
        );
        assert_eq!(ok.unwrap().unwrap().token(), "a");
    }

    #[test]
    fn parameter_names_are_decoded_like_a_form_handler_does() {
        for form in [
            &b"access_token=x"[..],
            b"a=1&access%5Ftoken=x",
            b"%61ccess_token",
            b"access_token",
            b"x=%26&access_token=",
        ] {
            assert!(has_access_token(form), "{}", String::from_utf8_lossy(form));
        }
        for form in [
            &b"access_token2=x"[..],
            b"x=access_token",
            b"access+token=x",
            b"",
            b"&&==",
        ] {
            assert!(!has_access_token(form), "{}", String::from_utf8_lossy(form));
        }
    }

    #[test]
    fn form_bodies_are_recognised_by_their_media_type() {
        let with = |values: &[&str]| {
            let mut map = HeaderMap::new();
            for v in values {
                map.append(CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
            }
            is_form(&map)
        };
        assert!(with(&["application/x-www-form-urlencoded"]));
        assert!(with(&["Application/X-WWW-Form-Urlencoded ; charset=UTF-8"]));
        assert!(with(&[
            "application/json",
            "application/x-www-form-urlencoded"
        ]));
        assert!(!with(&["application/json"]));
        assert!(!with(&["multipart/form-data; boundary=x"]));
        assert!(!with(&[]));
    }

    #[test]
    fn token68_accepts_exactly_the_rfc_6750_characters() {
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            assert_eq!(is_b64token_char(b), expected, "byte {b:#04x}");
            // Anywhere in a long token too, where the check runs 32 bytes at a time: in the
            // first block, a later one, and the bytes after the last whole block.
            for at in 0..70 {
                let mut token = vec![b'a'; 70];
                token[at] = b;
                // `=` as the last byte is padding.
                let padding = b == b'=' && at == token.len() - 1;
                assert_eq!(
                    is_token68(&token),
                    expected || padding,
                    "byte {b:#04x} at {at} of a long token"
                );
            }
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
                parse(&headers(&[]), &q).unwrap_err(),
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
