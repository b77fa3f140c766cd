//! Reading a request body whole, within a limit, and handing the same bytes on: for the two
//! steps that must look at a body before its handler does (the form-body token check in
//! `layer` and the step-up guard).
//!
//! `http_body_util`'s `Limited` + `collect` does the same, but per request it allocates a
//! queue for the chunks, wraps the body once more and asks hyper for a last, empty frame. An
//! MCP request's body nearly always arrives as one chunk, which is handed on as it is: no copy
//! and no allocation beyond the body put back (`BENCHMARKS.md`, "Reading the body once").

use axum::{
    body::{Body, HttpBody},
    response::Response,
};
use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http_body_util::BodyExt;

use crate::challenge::plain_error;

/// The body could not be read whole: longer than the limit, or the connection failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Unreadable;

impl Unreadable {
    /// The answer to a request whose body could not be read: 413 `invalid_request`.
    pub(crate) fn response(self) -> Response {
        plain_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "request body too large or unreadable",
        )
    }
}

/// Reads `body` whole, at most `limit` bytes (more is [`Unreadable`], as with
/// `http_body_util::Limited`), and leaves a body of the same bytes in its place. Trailers are
/// dropped, as `Collected::to_bytes` drops them.
pub(crate) async fn take_whole(body: &mut Body, limit: usize) -> Result<Bytes, Unreadable> {
    let mut incoming = std::mem::take(body);
    let mut first = Bytes::new();
    let mut more: Option<BytesMut> = None;
    let mut total = 0usize;
    // `is_end_stream` first: hyper knows from `Content-Length` when the last byte has come, so
    // a one-chunk body takes one poll, not two.
    while !incoming.is_end_stream() {
        let Some(frame) = incoming.frame().await else {
            break;
        };
        let Ok(data) = frame.map_err(|_| Unreadable)?.into_data() else {
            continue;
        };
        total = total.checked_add(data.len()).ok_or(Unreadable)?;
        if total > limit {
            return Err(Unreadable);
        }
        if data.is_empty() {
            continue;
        }
        match &mut more {
            Some(buffer) => buffer.extend_from_slice(&data),
            None if first.is_empty() => first = data,
            None => {
                let mut buffer = BytesMut::with_capacity(total);
                buffer.extend_from_slice(&first);
                buffer.extend_from_slice(&data);
                more = Some(buffer);
            }
        }
    }
    let whole = match more {
        Some(buffer) => buffer.freeze(),
        None => first,
    };
    *body = Body::from(whole.clone());
    Ok(whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of these chunks, each its own frame, with no length known in advance.
    fn chunked(chunks: &[&'static [u8]]) -> Body {
        let frames: Vec<Result<Bytes, std::io::Error>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        Body::from_stream(futures::stream::iter(frames))
    }

    async fn read_back(body: Body) -> Bytes {
        body.collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn reads_every_chunk_and_puts_the_same_bytes_back() {
        for chunks in [
            &[][..],
            &[b"".as_slice()],
            &[b"{\"jsonrpc\":\"2.0\"}".as_slice()],
            &[
                b"{\"json".as_slice(),
                b"".as_slice(),
                b"rpc\":".as_slice(),
                b"1}".as_slice(),
            ],
        ] {
            let whole: Vec<u8> = chunks.concat();
            let mut body = chunked(chunks);
            let read = take_whole(&mut body, 64).await.unwrap();
            assert_eq!(read, whole, "{chunks:?}");
            assert_eq!(read_back(body).await, whole, "{chunks:?}");
        }
        let mut body = Body::from("one chunk");
        assert_eq!(take_whole(&mut body, 9).await.unwrap(), "one chunk");
        assert_eq!(read_back(body).await, "one chunk");
    }

    /// Exactly `limit` bytes are read; one more is refused, however the chunks fall.
    #[tokio::test]
    async fn refuses_a_body_longer_than_the_limit() {
        let mut body = chunked(&[b"abc", b"def"]);
        assert_eq!(take_whole(&mut body, 6).await.unwrap(), "abcdef");
        for chunks in [&[b"abc".as_slice(), b"defg"][..], &[b"abcdefg"]] {
            let mut body = chunked(chunks);
            assert_eq!(
                take_whole(&mut body, 6).await,
                Err(Unreadable),
                "{chunks:?}"
            );
        }
        assert_eq!(
            take_whole(&mut Body::from("abcdefg"), 6).await,
            Err(Unreadable)
        );
    }

    #[tokio::test]
    async fn a_body_that_fails_is_unreadable() {
        let frames = [
            Ok(Bytes::from_static(b"abc")),
            Err(std::io::Error::other("connection reset")),
        ];
        let mut body = Body::from_stream(futures::stream::iter(frames));
        assert_eq!(take_whole(&mut body, 64).await, Err(Unreadable));
    }
}
