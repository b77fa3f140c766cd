//! The log set-up of this project's binaries, for a server of your own (feature `logging`).
//!
//! [`init`] installs a global `tracing` subscriber that keeps the request path fast at the
//! default level, where each MCP request writes one access line (`mcp_auth::access`):
//!
//! - the filter is `RUST_LOG` when set, else the default you pass (e.g. [`DEFAULT_FILTER`],
//!   which silences rmcp's per-request set-up lines);
//! - lines are written by a background thread, so a slow terminal or disk never holds up a
//!   request: a request's thread only copies its line into a shared batch, which the log thread
//!   takes whole, writes, and then pauses 10 ms, so under load it wakes about a hundred times a
//!   second rather than once per line; when the output falls behind by a full batch (8,192
//!   lines), lines are dropped and counted, never waited for;
//! - fields are written `name=value` without the per-field styling of `tracing-subscriber`'s
//!   default field formatter, the timestamp is the default layout written from a per-second
//!   cache, and colour codes only go to a terminal;
//! - the access line, in that same layout byte for byte, is written straight to the log
//!   writer, without going through `tracing`'s event dispatch and `core::fmt` (other events,
//!   an access line inside a span, and every line when colours are on take the default path).
//!
//! `BENCHMARKS.md` ("Logging defaults") measures each of these choices.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let _logs = mcp_auth::logging::init(mcp_auth::logging::DEFAULT_FILTER)?;
//! // ... build and serve; keep `_logs` until the process ends (dropping it flushes).
//! # Ok(())
//! # }
//! ```

mod batch;
mod clock;
pub(crate) mod direct;

use std::{
    fmt,
    io::{self, IsTerminal as _},
};

use tracing_subscriber::{
    EnvFilter, Registry,
    field::MakeExt as _,
    fmt::{
        FormatEvent, FormatFields,
        format::{Format, Writer},
        time::FormatTime,
    },
    layer::SubscriberExt as _,
    util::SubscriberInitExt as _,
};

/// The default filter of this project's binaries: every `info` line, the access lines among
/// them, but rmcp only from `warn` (it logs several lines at `info` for each stateless request).
pub const DEFAULT_FILTER: &str = "info,rmcp=warn";

/// Keeps the log thread running; dropping it writes what is still queued. Hold it in `main`.
#[must_use = "dropping the guard stops the log thread"]
pub struct LogGuard(#[allow(dead_code)] batch::LogThread);

impl fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LogGuard")
    }
}

/// Installs the global subscriber described in the [module docs](self), writing to stdout.
/// `default_filter` applies when `RUST_LOG` is not set (an `EnvFilter` directive string).
///
/// # Errors
/// `RUST_LOG` (or `default_filter`) is not a valid filter, or a global subscriber is already
/// installed.
pub fn init(default_filter: &str) -> Result<LogGuard, InitError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) => EnvFilter::try_new(&directives).map_err(|e| {
            InitError(format!(
                "RUST_LOG={directives:?} is not a valid filter: {e}"
            ))
        })?,
        Err(_) => EnvFilter::try_new(default_filter)
            .map_err(|e| InitError(format!("{default_filter:?} is not a valid filter: {e}")))?,
    };
    let (writer, thread) = batch::start(io::stdout(), batch::Limits::DEFAULT)
        .map_err(|e| InitError(format!("the log thread could not be started: {e}")))?;
    // Colour codes cost several times the formatting of the line itself, and do not belong in
    // a file.
    subscriber(filter, writer, io::stdout().is_terminal())
        .try_init()
        .map_err(|e| InitError(format!("logging could not be set up: {e}")))?;
    Ok(LogGuard(thread))
}

/// The subscriber [`init`] installs, writing through `writer`: the default layout with
/// `name=value` fields ([`plain_fields`]) and the given timer, colours when `ansi`, and the
/// access line written directly when not (see `direct`).
fn subscriber(
    filter: EnvFilter,
    writer: batch::BatchWriter,
    ansi: bool,
) -> impl tracing::Subscriber + Send + Sync + 'static {
    let timer = clock::UtcMicros;
    let events = Format::default().with_timer(timer);
    subscriber_with(filter, writer, ansi, timer, plain_fields(), events)
}

/// [`subscriber`] with another timer, field and event format, for tests.
fn subscriber_with<T, N, E>(
    filter: EnvFilter,
    writer: batch::BatchWriter,
    ansi: bool,
    timer: T,
    fields: N,
    events: E,
) -> impl tracing::Subscriber + Send + Sync + 'static
where
    T: FormatTime + Send + Sync + 'static,
    N: for<'w> FormatFields<'w> + Send + Sync + 'static,
    E: FormatEvent<Registry, N> + Send + Sync + 'static,
{
    // Only a plain subscriber gets the direct path: with colours the access line is styled,
    // which only the event path does.
    let direct = (!ansi).then(|| direct::Direct::new(writer.clone(), timer));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .fmt_fields(fields)
        .event_format(events)
        .with_writer(writer)
        .finish()
        .with(direct)
}

/// Why [`init`] failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InitError(String);

/// Fields as `name=value` (strings quoted and escaped, as `Debug` writes them), the message
/// bare, separated by spaces: the default layout, without the default formatter's styling of
/// every field name (a styled-string write per field even with colours off; about 4,000
/// instructions of an access line's 19,000).
pub fn plain_fields() -> impl for<'writer> FormatFields<'writer> + Send + Sync + 'static {
    tracing_subscriber::fmt::format::debug_fn(|w: &mut Writer<'_>, field, value| {
        if field.name() == "message" {
            write!(w, "{value:?}")
        } else {
            write!(w, "{field}={value:?}")
        }
    })
    .delimited(" ")
}

#[cfg(test)]
mod tests {
    use std::{
        io::Write,
        sync::{Arc, Mutex},
    };

    use super::*;

    /// An output that keeps what is written to it, for this module's tests and `direct`'s.
    #[derive(Clone, Default)]
    pub(super) struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        pub(super) fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// The layout of the default formatter, field for field: the message bare, then
    /// `name=value` with strings quoted and escaped (a newline in a value stays on one line).
    #[test]
    fn fields_are_name_equals_value_with_strings_quoted() {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .fmt_fields(plain_fields())
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                target: "mcp_auth::access",
                method = %"POST",
                user = "user_1",
                tool = "evil\ntool",
                status = 200u16,
                "request finished"
            );
        });
        let line = captured.text();
        assert_eq!(
            line,
            " INFO mcp_auth::access: request finished method=POST user=\"user_1\" \
             tool=\"evil\\ntool\" status=200\n"
        );
    }
}
