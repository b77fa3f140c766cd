//! The access line written straight to the log writer, when [`super::init`]'s subscriber is
//! the one in use.
//!
//! As a `tracing` event, the access line goes through the dispatcher, the event's value set
//! and a `Visit` call per field, the fmt layer's own buffer, a `core::fmt` write for the
//! method, and is copied once more from the fmt layer's buffer into the log batch: more than a
//! third of what the line cost (`BENCHMARKS.md`, "The access line without the event"). Here
//! the pipeline's fields are written in the same layout, byte for byte, into this thread's
//! line buffer and handed to the same log writer.
//!
//! Nothing else changes:
//! - the filter decision is the one the event's own callsite would get (same target, level
//!   and field names: `access_log::wanted`);
//! - a line inside a span takes the event path, since the default layout names the spans;
//! - with colours on, or under any other subscriber (a test's `with_default`, a server's own
//!   set-up), the line is an ordinary event.

use std::{cell::RefCell, fmt, fmt::Write as _, io::Write as _};

use tracing_subscriber::{
    Layer,
    fmt::{MakeWriter as _, format::Writer, time::FormatTime},
};

use super::batch::BatchWriter;
use crate::access_log::{ACCESS, Line};

/// The layer that marks [`super::init`]'s subscriber and carries what the direct path needs.
/// It takes part in nothing: it is found by type (`Dispatch::downcast_ref`), which is how a
/// line knows that the subscriber in use is this one.
pub(crate) struct Direct {
    writer: BatchWriter,
    timer: Box<dyn FormatTime + Send + Sync>,
}

impl Direct {
    /// Lines written through `writer`, timestamped by `timer`: the fmt layer's writer and
    /// timer, so both paths write the same bytes to the same place. Only for a subscriber
    /// that writes without colours.
    pub(crate) fn new(writer: BatchWriter, timer: impl FormatTime + Send + Sync + 'static) -> Self {
        Self {
            writer,
            timer: Box::new(timer),
        }
    }

    fn write(&self, access: &Line<'_>) {
        with_buffer(|line| {
            if format(line, self.timer.as_ref(), access).is_ok() {
                // Nowhere to report a failed write to the log but the log.
                let _ = self.writer.make_writer().write_all(line.as_bytes());
            }
        });
    }
}

impl<S: tracing::Subscriber> Layer<S> for Direct {}

/// Writes `access` directly if the subscriber in use is [`super::init`]'s; `false` when the
/// caller must emit it as an event. The caller has already asked the filter
/// ([`crate::access_log::wanted`]).
pub(crate) fn write(access: &Line<'_>) -> bool {
    tracing::dispatcher::get_default(|dispatch| {
        let Some(direct) = dispatch.downcast_ref::<Direct>() else {
            return false;
        };
        if dispatch.current_span().id().is_some() {
            return false;
        }
        direct.write(access);
        true
    })
}

/// The line as `tracing-subscriber`'s default layout, with [`super::plain_fields`], writes
/// the pipeline's event: the timestamp, the level padded to five characters, the target, the
/// message, then `name=value` fields, strings quoted as `Debug` quotes them. A plain ASCII
/// string is copied as it is and numbers are written with `itoa`, where the event path spends
/// most of its formatting in `core::fmt` (a styled write for the level and the target even with
/// colours off, `Debug` escaping run character by character).
fn format(line: &mut String, timer: &dyn FormatTime, access: &Line<'_>) -> fmt::Result {
    // As `Format::format_timestamp` does: a timer that fails is noted, not fatal.
    if timer.format_time(&mut Writer::new(line)).is_err() {
        line.push_str("<unknown time>");
    }
    // The level as `FmtLevel` writes it without colours (padded to five characters), between
    // the spaces that separate it from the timestamp and the target.
    line.push_str("  INFO ");
    line.push_str(ACCESS);
    line.push_str(": ");
    // `method = %…` is written with `Display`, which for a `Method` is its `as_str`.
    let method = access.method.as_str();
    match &access.caller {
        Some(caller) => {
            line.push_str("request finished method=");
            line.push_str(method);
            line.push_str(" user=");
            push_quoted(line, caller.user)?;
            line.push_str(" client=");
            push_quoted(line, caller.client)?;
            // A `None` field is not recorded, so not written.
            if let Some(tool) = caller.tool {
                line.push_str(" tool=");
                push_quoted(line, tool)?;
            }
        }
        None => {
            line.push_str("request refused method=");
            line.push_str(method);
        }
    }
    line.push_str(" status=");
    line.push_str(itoa::Buffer::new().format(access.status));
    line.push_str(" duration_us=");
    line.push_str(itoa::Buffer::new().format(access.duration_us));
    line.push('\n');
    Ok(())
}

/// Runs `f` with this thread's line buffer, emptied. Pushing to a `String` copies a one-byte
/// separator or quote inline, where each write to a `fmt::Write` is a call and a `memcpy`.
fn with_buffer<R>(f: impl FnOnce(&mut String) -> R) -> R {
    thread_local! {
        static LINE: RefCell<String> = const { RefCell::new(String::new()) };
    }
    LINE.with(|line| {
        let mut owned = String::new();
        let mut borrowed = line.try_borrow_mut();
        let line = match &mut borrowed {
            Ok(line) => &mut **line,
            // Only if writing a line logged another: that one gets a buffer of its own.
            Err(_) => &mut owned,
        };
        line.clear();
        f(line)
    })
}

/// Appends `value` as `Debug` writes a string: quoted, with `Debug`'s escapes.
fn push_quoted(line: &mut String, value: &str) -> fmt::Result {
    // `Debug` leaves printable ASCII other than `"` and `\` as it is; anything else gets
    // `Debug`'s own escaping. (No early exit, so the compiler can vectorise it.)
    let plain = value.bytes().fold(true, |ok, b| {
        ok & (b' '..=b'~').contains(&b) & (b != b'"') & (b != b'\\')
    });
    if plain {
        line.push('"');
        line.push_str(value);
        line.push('"');
        Ok(())
    } else {
        write!(line, "{value:?}")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::{body::Body, extract::Request, response::Response};
    use http::{Method, StatusCode};
    use tracing_subscriber::{
        EnvFilter,
        fmt::{FmtContext, FormatEvent, FormatFields, format::Format},
    };

    use super::*;
    use crate::{
        access_log::{self, Caller},
        logging::{batch, plain_fields, subscriber_with, tests::Captured},
    };

    /// A timer that always writes the same instant, so two paths' lines can be compared.
    #[derive(Clone, Copy)]
    struct Fixed;

    impl FormatTime for Fixed {
        fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
            w.write_str("2026-11-30T12:34:56.000001Z")
        }
    }

    /// An event format that writes only a marker: a line that went through the event path
    /// shows it, a line written directly does not.
    struct Marker;

    impl<S, N> FormatEvent<S, N> for Marker
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        fn format_event(
            &self,
            _: &FmtContext<'_, S, N>,
            mut w: Writer<'_>,
            _: &tracing::Event<'_>,
        ) -> fmt::Result {
            writeln!(w, "<event>")
        }
    }

    /// The event format of a test's subscriber.
    #[derive(Clone, Copy)]
    enum Events {
        /// `tracing-subscriber`'s default layout, with the fixed timer.
        Default,
        Marker,
    }

    /// What `f` logs under this crate's subscriber (`init`'s, with the fixed timer and the
    /// given event format), written through the log thread.
    fn ours(filter: &str, ansi: bool, events: Events, f: impl FnOnce()) -> String {
        let out = Captured::default();
        let (writer, thread) = batch::start(out.clone(), batch::Limits::DEFAULT).unwrap();
        let filter = EnvFilter::new(filter);
        match events {
            Events::Default => {
                let layout = Format::default().with_timer(Fixed);
                let subscriber =
                    subscriber_with(filter, writer, ansi, Fixed, plain_fields(), layout);
                tracing::subscriber::with_default(subscriber, f);
            }
            Events::Marker => {
                let subscriber =
                    subscriber_with(filter, writer, ansi, Fixed, plain_fields(), Marker);
                tracing::subscriber::with_default(subscriber, f);
            }
        }
        drop(thread);
        out.text()
    }

    /// What `f` logs under another subscriber, `tracing-subscriber`'s own with the same
    /// fields and timer, which sees the access line as an event.
    fn foreign(filter: &str, events: Events, f: impl FnOnce()) -> String {
        let out = Captured::default();
        let sink = out.clone();
        let builder = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new(filter))
            .with_ansi(false)
            .fmt_fields(plain_fields())
            .with_writer(move || sink.clone());
        match events {
            Events::Default => tracing::subscriber::with_default(
                builder
                    .event_format(Format::default().with_timer(Fixed))
                    .finish(),
                f,
            ),
            Events::Marker => {
                tracing::subscriber::with_default(builder.event_format(Marker).finish(), f);
            }
        }
        out.text()
    }

    /// Lines of every shape the pipeline writes, strings that need escaping among them.
    fn emit_all() {
        let get = Method::GET;
        let custom = Method::from_bytes(b"PURGE").unwrap();
        for (user, client, tool) in [
            ("user_2alice", "client_x", Some("whoami")),
            ("", "", None),
            ("quote\"back\\slash", "c", Some("new\nline")),
            (
                "tab\tdel\u{7f}",
                "caf\u{e9} e\u{301}",
                Some("\u{200b}zero-width"),
            ),
            ("nul\0esc\u{1b}[31m", "\u{1f600}", Some("")),
        ] {
            Line {
                method: &Method::POST,
                caller: Some(Caller { user, client, tool }),
                status: 200,
                duration_us: 1234,
            }
            .emit();
        }
        for method in [&get, &custom] {
            Line {
                method,
                caller: None,
                status: 401,
                duration_us: 0,
            }
            .emit();
        }
        Line {
            method: &Method::DELETE,
            caller: Some(Caller {
                user: "u",
                client: "c",
                tool: None,
            }),
            status: u16::MAX,
            duration_us: u64::MAX,
        }
        .emit();
    }

    /// The lines written directly are the default layout's lines for the same event, byte
    /// for byte.
    #[test]
    fn the_same_bytes_as_the_event_path() {
        let direct = ours("info", false, Events::Default, emit_all);
        let event = foreign("info", Events::Default, emit_all);
        assert_eq!(direct, event);
        assert_eq!(direct.lines().count(), 8, "{direct}");
        assert!(direct.starts_with(
            "2026-11-30T12:34:56.000001Z  INFO mcp_auth::access: request finished method=POST \
             user=\"user_2alice\" client=\"client_x\" tool=\"whoami\" status=200 duration_us=1234\n"
        ));
        assert!(direct.contains(
            "2026-11-30T12:34:56.000001Z  INFO mcp_auth::access: request refused method=PURGE \
             status=401 duration_us=0\n"
        ));
    }

    /// Only this crate's own subscriber, without colours and outside any span, gets the line
    /// directly; everything else sees an event.
    #[test]
    fn the_line_is_written_directly_only_under_this_crates_plain_subscriber() {
        let direct = ours("info", false, Events::Marker, emit_all);
        assert_eq!(direct.lines().count(), 8, "{direct}");
        assert!(!direct.contains("<event>"), "{direct}");

        let in_span = ours("info", false, Events::Marker, || {
            tracing::info_span!("outer").in_scope(emit_all);
        });
        assert_eq!(in_span, "<event>\n".repeat(8));

        let with_colours = ours("info", true, Events::Marker, emit_all);
        assert_eq!(with_colours, "<event>\n".repeat(8));

        let elsewhere = foreign("info", Events::Marker, emit_all);
        assert_eq!(elsewhere, "<event>\n".repeat(8));
    }

    /// `wanted` (which gates the admitted request's line) and `refused` decide as the filter
    /// decides for the event itself, a directive that names fields included.
    #[test]
    fn the_filter_decides_as_for_the_event() {
        fn finished() {
            Line {
                method: &Method::POST,
                caller: Some(Caller {
                    user: "u",
                    client: "c",
                    tool: Some("t"),
                }),
                status: 200,
                duration_us: 1,
            }
            .emit();
        }
        fn refused() {
            let req = Request::builder()
                .method(Method::POST)
                .body(Body::empty())
                .unwrap();
            let mut refusal = Response::new(Body::empty());
            *refusal.status_mut() = StatusCode::UNAUTHORIZED;
            access_log::refused(&req, &refusal, Instant::now());
        }
        for (filter, wants_finished, wants_refused) in [
            ("info", true, true),
            ("info,rmcp=warn", true, true),
            ("warn", false, false),
            ("off", false, false),
            ("info,mcp_auth::access=off", false, false),
            ("warn,mcp_auth::access=info", true, true),
            ("warn,mcp_auth=info", true, true),
            // Only callsites with a `user` field: the admitted request's line, not the refusal's.
            ("warn,mcp_auth::access[{user}]=info", true, false),
        ] {
            // The event path, under the same filter.
            let event = foreign(filter, Events::Default, || {
                finished();
                refused();
            });
            assert_eq!(
                event.contains("request finished"),
                wants_finished,
                "{filter}"
            );
            assert_eq!(event.contains("request refused"), wants_refused, "{filter}");

            let mut wanted = None;
            let direct = ours(filter, false, Events::Default, || {
                wanted = Some(access_log::wanted());
                refused();
            });
            assert_eq!(wanted, Some(wants_finished), "{filter}");
            assert_eq!(
                direct.contains("request refused"),
                wants_refused,
                "{filter}"
            );
        }
    }
}
