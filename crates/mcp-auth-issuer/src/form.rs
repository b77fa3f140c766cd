//! `application/x-www-form-urlencoded` parameters (query strings and form bodies) with the RFC 6749
//! rules: a parameter sent twice is an error, a parameter sent empty counts as absent.

use axum::http::{HeaderMap, header};

/// Parameters in the order received.
#[derive(Debug, Default, Clone)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(input: &str) -> Self {
        Self(
            url::form_urlencoded::parse(input.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The single non-empty value of `name`; `Err` names the parameter when it was repeated.
    pub(crate) fn get(&self, name: &str) -> Result<Option<&str>, String> {
        let mut values = self
            .0
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(format!("parameter `{name}` was sent more than once"));
        }
        Ok(first)
    }

    /// Like [`Params::get`] but collapses "repeated" into the caller's error type.
    pub(crate) fn one<E>(
        &self,
        name: &str,
        dup: impl FnOnce(String) -> E,
    ) -> Result<Option<&str>, E> {
        self.get(name).map_err(dup)
    }
}

/// True when the request says its body is `application/x-www-form-urlencoded`.
pub(crate) fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused_and_empty_ones_ignored() {
        let p = Params::parse("a=1&a=2&b=&c=x%20y");
        assert!(p.get("a").is_err());
        assert_eq!(p.get("b").unwrap(), None);
        assert_eq!(p.get("c").unwrap(), Some("x y"));
        assert_eq!(p.get("missing").unwrap(), None);
    }
}
