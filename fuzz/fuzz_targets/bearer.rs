//! The `Authorization` header parser (`mcp_auth::bearer`): never panics, and agrees with the
//! RFC 6750 grammar written out plainly below, on every header value and query string.
//!
//! RFC 6750 §2.1: `credentials = "Bearer" 1*SP b64token`,
//! `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`; the scheme is
//! case-insensitive (RFC 9110 §11.1). §2.3: a token in the query is the form-encoded
//! `access_token` parameter, which the framework refuses.
#![no_main]

use http::{HeaderMap, HeaderValue, Uri, header::AUTHORIZATION};
use libfuzzer_sys::fuzz_target;
use mcp_auth::bearer::{self, BearerError, MAX_TOKEN_LEN};

/// One request, as text so seeds are readable: each line is an `Authorization` header value,
/// except a line starting with `?`, which is the query string.
struct Input {
    /// `Authorization` header values (zero, one or several).
    values: Vec<Vec<u8>>,
    /// The request's query string.
    query: Option<String>,
}

impl Input {
    fn parse(data: &[u8]) -> Self {
        let mut input = Input {
            values: Vec::new(),
            query: None,
        };
        for line in data.split(|b| *b == b'\n') {
            match line.strip_prefix(b"?") {
                Some(q) => input.query = Some(String::from_utf8_lossy(q).into_owned()),
                None => input.values.push(line.to_vec()),
            }
        }
        input
    }
}

/// What the parser must answer, computed the slow and obvious way.
#[derive(Clone, Debug, PartialEq)]
enum Expected {
    NoToken,
    Token(Vec<u8>),
    Err(BearerError),
}

fn reference_value(value: &[u8]) -> Expected {
    let scheme = b"bearer";
    if value.len() < scheme.len() || !value[..scheme.len()].eq_ignore_ascii_case(scheme) {
        return Expected::NoToken;
    }
    let rest = &value[scheme.len()..];
    if rest.is_empty() {
        return Expected::Err(BearerError::Empty);
    }
    if rest[0] != b' ' {
        return Expected::NoToken; // another scheme, such as `Bearerx`
    }
    let mut i = 0;
    while i < rest.len() && rest[i] == b' ' {
        i += 1;
    }
    let token = &rest[i..];
    if token.is_empty() {
        return Expected::Err(BearerError::Empty);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Expected::Err(BearerError::TooLong);
    }
    // 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let mut j = 0;
    while j < token.len() && (token[j].is_ascii_alphanumeric() || b"-._~+/".contains(&token[j])) {
        j += 1;
    }
    if j == 0 {
        return Expected::Err(BearerError::Malformed);
    }
    while j < token.len() && token[j] == b'=' {
        j += 1;
    }
    if j != token.len() {
        return Expected::Err(BearerError::Malformed);
    }
    Expected::Token(token.to_vec())
}

/// RFC 6750 §2.3: the query is `application/x-www-form-urlencoded`; any parameter that
/// decodes to the name `access_token` is a token in the query.
fn reference_query_has_token(query: &str) -> bool {
    url::form_urlencoded::parse(query.as_bytes()).any(|(name, _)| name == "access_token")
}

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);
    let values: Vec<HeaderValue> = input
        .values
        .iter()
        .filter_map(|v| HeaderValue::from_bytes(v).ok())
        .collect();

    // One value at a time, through `parse_value`.
    for value in &values {
        let got = match bearer::parse_value(value) {
            Ok(None) => Expected::NoToken,
            Ok(Some(b)) => Expected::Token(b.token().as_bytes().to_vec()),
            Err(e) => Expected::Err(e),
        };
        let want = reference_value(value.as_bytes());
        assert_eq!(got, want, "header value {:?}", value.as_bytes());
    }

    // The whole request, through `parse`.
    let uri = match &input.query {
        Some(q) => match format!("/mcp?{q}").parse::<Uri>() {
            Ok(u) => u,
            Err(_) => return,
        },
        None => Uri::from_static("/mcp"),
    };
    let mut headers = HeaderMap::new();
    for value in &values {
        headers.append(AUTHORIZATION, value.clone());
    }
    // RFC 6750 §2: a token in the query alone is refused as such; a token in the header (a
    // Bearer header, well-formed or not, or several headers) and in the query is refused for
    // using more than one method.
    let header = if values.len() > 1 {
        Expected::Err(BearerError::MultipleHeaders)
    } else if let Some(value) = values.first() {
        reference_value(value.as_bytes())
    } else {
        Expected::NoToken
    };
    let in_header = header != Expected::NoToken;
    let expected = |elsewhere: bool, alone: BearerError| match (elsewhere, in_header) {
        (false, _) => header.clone(),
        (true, false) => Expected::Err(alone),
        (true, true) => Expected::Err(BearerError::MultipleMethods),
    };
    let observed = |got: Result<Option<bearer::Bearer>, BearerError>| match got {
        Ok(None) => Expected::NoToken,
        Ok(Some(b)) => Expected::Token(b.token().as_bytes().to_vec()),
        Err(e) => Expected::Err(e),
    };
    let in_query = uri.query().is_some_and(reference_query_has_token);
    let got = observed(bearer::parse(&headers, &uri));
    let want = expected(in_query, BearerError::TokenInQuery);
    assert_eq!(got, want, "query {:?}, values {values:?}", uri.query());

    // The same parameters as an `application/x-www-form-urlencoded` body instead (§2.2).
    if let Some(form) = &input.query {
        let got = observed(bearer::parse_with_form(
            &headers,
            &Uri::from_static("/mcp"),
            Some(form.as_bytes()),
        ));
        let want = expected(reference_query_has_token(form), BearerError::TokenInBody);
        assert_eq!(got, want, "form {form:?}, values {values:?}");
    }
});
