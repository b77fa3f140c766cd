//! The event formatter: `tracing-subscriber`'s default layout, with the access line written
//! directly.
//!
//! Every event but one kind goes to `tracing-subscriber`'s own [`Format<Full, T>`]. The access
//! line (target `mcp_auth::access`, outside any span, colours off), which is written once per
//! request, is written here in the same layout, byte for byte: the timestamp, the level padded
//! to five characters, the target, the message, then `name=value` fields, strings quoted as
//! `Debug` quotes them. The default path spends most of the line's formatting cost in
//! `core::fmt` machinery: a styled write for the level and for the target even with colours off,
//! and `Debug` escaping run character by character on every string (`BENCHMARKS.md`, "The
//! access line written directly"). Here a plain ASCII string is copied as it is, and numbers are
//! written with `itoa`.

use std::{cell::RefCell, fmt, fmt::Write as _};

use tracing::{Event, Level, Subscriber, field::Field};
use tracing_subscriber::{
    fmt::{
        FmtContext, FormatEvent, FormatFields,
        format::{Format, Full, Writer},
        time::FormatTime,
    },
    registry::LookupSpan,
};

use crate::access_log::ACCESS;

/// The default layout, with a direct path for the access line (see the [module docs](self)).
pub(crate) struct Lines<T> {
    timer: T,
    full: Format<Full, T>,
}

impl<T: FormatTime + Clone> Lines<T> {
    pub(crate) fn new(timer: T) -> Self {
        Self {
            full: Format::default().with_timer(timer.clone()),
            timer,
        }
    }
}

impl<S, N, T> FormatEvent<S, N> for Lines<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    T: FormatTime,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        // Inside a span the default layout names the spans; with colours it styles the parts.
        // Neither happens to the access line as this crate writes it, so both take the default.
        if meta.target() != ACCESS || writer.has_ansi_escapes() || ctx.event_scope().is_some() {
            return self.full.format_event(ctx, writer, event);
        }
        thread_local! {
            static LINE: RefCell<String> = const { RefCell::new(String::new()) };
        }
        // The line is put together in a buffer of this thread's and handed over whole: pushing
        // to a `String` directly copies a one-byte separator or quote inline, where each write
        // to `writer` is a call through `dyn fmt::Write` and a `memcpy` (about thirty per line).
        LINE.with(|line| {
            let mut owned = String::new();
            let mut borrowed = line.try_borrow_mut();
            let line = match &mut borrowed {
                Ok(line) => &mut **line,
                // Only if formatting a line logged another: that one gets a buffer of its own.
                Err(_) => &mut owned,
            };
            line.clear();
            // As `Format::format_timestamp` does: a timer that fails is noted, not fatal.
            if self.timer.format_time(&mut Writer::new(line)).is_err() {
                line.push_str("<unknown time>");
            }
            line.push_str(level_column(*meta.level()));
            line.push_str(meta.target());
            line.push_str(": ");
            let mut fields = Fields {
                line,
                first: true,
                result: Ok(()),
            };
            event.record(&mut fields);
            fields.result?;
            line.push('\n');
            writer.write_str(line)
        })
    }
}

/// The space after the timestamp, the level as `FmtLevel` writes it without colours (padded to
/// five characters), and the space after it.
fn level_column(level: Level) -> &'static str {
    match level {
        Level::TRACE => " TRACE ",
        Level::DEBUG => " DEBUG ",
        Level::INFO => "  INFO ",
        Level::WARN => "  WARN ",
        Level::ERROR => " ERROR ",
    }
}

/// Writes fields as [`super::plain_fields`] does: the message bare, the others `name=value`
/// with `Debug` values, separated by single spaces.
struct Fields<'a> {
    line: &'a mut String,
    first: bool,
    result: fmt::Result,
}

impl Fields<'_> {
    /// Starts a field: the separator, and `name=` unless it is the message.
    fn start(&mut self, field: &Field) {
        if !std::mem::take(&mut self.first) {
            self.line.push(' ');
        }
        if field.name() != "message" {
            self.line.push_str(field.name());
            self.line.push('=');
        }
    }
}

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.start(field);
        // `Debug` leaves printable ASCII other than `"` and `\` as it is; anything else gets
        // `Debug`'s own escaping. (No early exit, so the compiler can vectorise it.)
        let plain = value.bytes().fold(true, |ok, b| {
            ok & (b' '..=b'~').contains(&b) & (b != b'"') & (b != b'\\')
        });
        if plain {
            self.line.push('"');
            self.line.push_str(value);
            self.line.push('"');
        } else if self.result.is_ok() {
            self.result = write!(self.line, "{value:?}");
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.start(field);
        self.line.push_str(itoa::Buffer::new().format(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.start(field);
        self.line.push_str(itoa::Buffer::new().format(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.start(field);
        if self.result.is_ok() {
            self.result = write!(self.line, "{value:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io,
        sync::{Arc, Mutex},
    };

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// A timer that always writes the same instant, so two formatters' lines can be compared.
    #[derive(Clone)]
    struct Fixed;

    impl FormatTime for Fixed {
        fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
            w.write_str("2026-11-30T12:34:56.000001Z")
        }
    }

    /// Access lines of every shape the pipeline writes, strings that need escaping among them,
    /// events of other targets and events inside a span.
    fn emit() {
        for (user, tool) in [
            ("user_2alice", Some("whoami")),
            ("", None),
            ("quote\"back\\slash", Some("new\nline")),
            ("tab\tdel\u{7f}", Some("caf\u{e9} e\u{301}")),
            ("nul\0esc\u{1b}[31m", Some("\u{200b}zero-width")),
        ] {
            tracing::info!(
                target: ACCESS,
                method = %http::Method::POST,
                user,
                client = "client_x",
                tool,
                status = 200u16,
                duration_us = 1234u64,
                "request finished"
            );
        }
        tracing::info!(target: ACCESS, method = %"GET", status = 401u16, duration_us = 0u64, "request refused");
        tracing::info!(target: ACCESS, delta = -5i64, flag = true, ratio = 0.5f64, "other types");
        tracing::warn!(target: "somewhere_else", user = "u", "not an access line");
        let span = tracing::info_span!("outer", id = 7);
        span.in_scope(|| tracing::info!(target: ACCESS, user = "u", "inside a span"));
    }

    fn lines_from<E, F>(event_format: E, fields: F) -> String
    where
        E: FormatEvent<tracing_subscriber::Registry, F> + Send + Sync + 'static,
        F: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .fmt_fields(fields)
            .event_format(event_format)
            .with_writer(captured.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        captured.text()
    }

    /// The lines written directly are the default formatter's lines, byte for byte.
    #[test]
    fn the_same_bytes_as_the_default_layout() {
        let direct = lines_from(Lines::new(Fixed), super::super::plain_fields());
        let default = lines_from(
            Format::default().with_timer(Fixed),
            super::super::plain_fields(),
        );
        assert_eq!(direct, default);
        assert_eq!(direct.lines().count(), 9, "{direct}");
        assert!(direct.starts_with(
            "2026-11-30T12:34:56.000001Z  INFO mcp_auth::access: request finished method=POST \
             user=\"user_2alice\" client=\"client_x\" tool=\"whoami\" status=200 duration_us=1234\n"
        ));
    }

    /// Only access lines outside spans take the direct path: with a field formatter that writes
    /// a marker, the other events show the marker and the access lines do not.
    #[test]
    fn only_access_lines_outside_spans_are_written_directly() {
        let marker = tracing_subscriber::fmt::format::debug_fn(|w: &mut Writer<'_>, _, _| {
            w.write_str("<default>")
        });
        let text = lines_from(Lines::new(Fixed), marker);
        let (direct, default): (Vec<&str>, Vec<&str>) =
            text.lines().partition(|l| !l.contains("<default>"));
        assert_eq!(direct.len(), 7, "{text}");
        assert!(direct.iter().all(|l| l.contains(" mcp_auth::access: ")));
        assert_eq!(default.len(), 2, "{text}");
        assert!(default[0].contains("somewhere_else"));
        assert!(default[1].contains("outer{"));
    }
}
