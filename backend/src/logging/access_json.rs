//! The access line as a JSON line, written by an event format of its own:
//! the same object `tracing-subscriber`'s JSON format writes (`timestamp`,
//! `level`, `message`, the fields, `target`), serialised straight into a
//! byte buffer.
//!
//! Why a format of its own: the access line is the one event of every
//! request, and `tracing-subscriber`'s JSON format hands each fragment of
//! each field (a quote, a key, a colon) through a `fmt::Write` adaptor that
//! checks it as UTF-8 again; for the access line's dozen fields that was
//! most of the cost of a cached request. Every other event, rare and
//! diverse, keeps the standard format. One format for both, in one
//! `fmt::Layer` under one filter, rather than a layer each: filters that
//! disagree on a target make tracing ask every filter about every event.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The target of the access line (cognito-verifier's `access_log` and
/// `AccessLine` write it).
pub const TARGET: &str = cognito_verifier::ACCESS_TARGET;

/// An event format writing the access line as JSON itself and every other
/// event with `other`, tracing-subscriber's JSON format.
pub struct AccessJson<F> {
    other: F,
}

impl<F> AccessJson<F> {
    /// Other events are written by `other`.
    pub fn new(other: F) -> Self {
        AccessJson { other }
    }
}

impl<S, N, F> FormatEvent<S, N> for AccessJson<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if event.metadata().target() != TARGET {
            return self.other.format_event(ctx, writer, event);
        }
        thread_local! {
            static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        LINE.with_borrow_mut(|line| {
            line.clear();
            format_line(line, event);
            // All of it was written from `str`s: the check is a formality.
            writer.write_str(std::str::from_utf8(line).map_err(|_| fmt::Error)?)
        })
    }
}

/// `{"timestamp":…,"level":…,<fields>,"target":…}` and a newline.
fn format_line(line: &mut Vec<u8>, event: &Event<'_>) {
    let meta = event.metadata();
    line.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(line, SystemTime::now());
    line.extend_from_slice(b"\",\"level\":");
    string(line, meta.level().as_str());
    let plain_names = plain_names(meta);
    event.record(&mut Fields { line, plain_names });
    line.extend_from_slice(b",\"target\":");
    string(line, meta.target());
    line.extend_from_slice(b"}\n");
}

/// Whether every field name of `meta`'s events needs no escaping in JSON:
/// true of every Rust identifier, and checked once per call site and thread
/// (the access line has one), not once per line.
fn plain_names(meta: &'static Metadata<'static>) -> bool {
    thread_local! {
        /// The call site last found to have plain names.
        static PLAIN: Cell<*const Metadata<'static>> = const { Cell::new(std::ptr::null()) };
    }
    PLAIN.with(|plain| {
        if std::ptr::eq(plain.get(), meta) {
            return true;
        }
        let all_plain = meta.fields().iter().all(|f| !needs_escape(f.name()));
        if all_plain {
            plain.set(meta);
        }
        all_plain
    })
}

/// `now` as the other lines have it: RFC 3339, microseconds, UTC
/// (`2026-12-07T21:25:29.015410Z`). The date and time of day change once a
/// second, so each thread keeps them formatted and writes only the
/// microseconds.
fn timestamp(line: &mut Vec<u8>, now: SystemTime) {
    thread_local! {
        /// The second last formatted on this thread, and its `YYYY-MM-DDTHH:MM:SS`.
        static SECOND: RefCell<(u64, [u8; 19])> = const { RefCell::new((u64::MAX, [0; 19])) };
    }
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (seconds, micros) = (since_epoch.as_secs(), since_epoch.subsec_micros());
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != seconds {
            // `YYYY-MM-DDTHH:MM:SSZ` for the years 0 to 9999; any other is
            // written in full, uncached.
            let whole =
                humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(seconds))
                    .to_string();
            match whole.as_bytes().get(..19) {
                Some(date_time) if whole.len() == 20 => {
                    text.copy_from_slice(date_time);
                    *second = seconds;
                }
                _ => {
                    let full = humantime::format_rfc3339_micros(now).to_string();
                    line.extend_from_slice(full.as_bytes());
                    return;
                }
            }
        }
        line.extend_from_slice(text);
        let mut digits = *b".000000Z";
        let mut rest = micros;
        for digit in digits[1..7].iter_mut().rev() {
            *digit = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        line.extend_from_slice(&digits);
    });
}

/// `value` as a JSON string.
fn string(line: &mut Vec<u8>, value: &str) {
    line.reserve(value.len() + 2);
    line.push(b'"');
    escaped(line, value);
    line.push(b'"');
}

/// `text` as the inside of a JSON string. Most text needs no escaping (JSON
/// escapes only `"`, `\\` and control characters): that is copied as it is.
fn escaped(line: &mut Vec<u8>, text: &str) {
    if !needs_escape(text) {
        line.extend_from_slice(text.as_bytes());
    } else if let Ok(quoted) = serde_json::to_string(text) {
        // A `str` always serialises; its quotes are the caller's to write.
        line.extend_from_slice(&quoted.as_bytes()[1..quoted.len() - 1]);
    }
}

/// Whether JSON escapes any byte of `value`. Without an early exit, so that
/// the compiler checks many bytes at once.
fn needs_escape(value: &str) -> bool {
    value.bytes().fold(false, |any, b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

fn json<T: serde::Serialize + ?Sized>(line: &mut Vec<u8>, value: &T) {
    // Writing into a Vec cannot fail, and strings, numbers and bools always serialise.
    let _ = serde_json::to_writer(&mut *line, value);
}

/// Each field as `,"name":value`: strings and numbers as JSON, anything
/// else by its `Debug` text (the message is a `fmt::Arguments`).
struct Fields<'a> {
    line: &'a mut Vec<u8>,
    /// Whether no field name needs escaping.
    plain_names: bool,
}

impl Fields<'_> {
    fn entry<T: serde::Serialize + ?Sized>(&mut self, field: &Field, value: &T) {
        self.key(field);
        json(self.line, value);
    }

    fn key(&mut self, field: &Field) {
        let name = field.name();
        if self.plain_names {
            self.line.reserve(name.len() + 4);
            self.line.extend_from_slice(b",\"");
            self.line.extend_from_slice(name.as_bytes());
            self.line.extend_from_slice(b"\":");
        } else {
            self.line.push(b',');
            string(self.line, name);
            self.line.push(b':');
        }
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        string(self.line, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, &value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, &value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.entry(field, &value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, &value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        self.line.push(b'"');
        // Straight into the line, escaped on the way: no String per event.
        let _ = write!(Escaped(self.line), "{value:?}");
        self.line.push(b'"');
    }
}

/// Text written into a JSON string, escaped on the way.
struct Escaped<'a>(&'a mut Vec<u8>);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escaped(self.0, s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The lines `emit` writes through `AccessJson` and through
    /// tracing-subscriber's own JSON format, as JSON values.
    fn both(emit: impl Fn()) -> (Value, Value) {
        let (ours, theirs) = (Captured::default(), Captured::default());
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .map_event_format(AccessJson::new)
                    .with_writer(ours.clone()),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(theirs.clone()),
            );
        tracing::subscriber::with_default(subscriber, emit);
        let parse = |c: &Captured| -> Value {
            let text = String::from_utf8(c.0.lock().unwrap().clone()).unwrap();
            assert_eq!(text.lines().count(), 1, "{text}");
            assert!(text.ends_with('\n'));
            serde_json::from_str(&text).unwrap()
        };
        (parse(&ours), parse(&theirs))
    }

    /// `line` without its timestamp, checked to have the standard's shape
    /// (2026-12-07T21:25:29.015410Z).
    fn untimed(mut line: Value) -> Value {
        let t = line["timestamp"].as_str().unwrap();
        let shape: String = t
            .chars()
            .map(|c| if c.is_ascii_digit() { '0' } else { c })
            .collect();
        assert_eq!(shape, "0000-00-00T00:00:00.000000Z");
        line.as_object_mut().unwrap().remove("timestamp");
        line
    }

    #[test]
    fn the_line_is_the_object_the_standard_json_format_writes() {
        let (ours, theirs) = both(|| {
            let who: Option<&str> = Some("alice \"the\" admin\n\u{1F600}");
            let none: Option<&str> = None;
            tracing::info!(
                target: "access",
                method = "GET",
                route = "/api/notes/{id}",
                status = 200u16,
                duration_ms = 1.25,
                big = u64::MAX,
                negative = -3i64,
                flag = true,
                username = who,
                refusal = none,
                debugged = ?vec![1, 2],
                quoted_debug = ?"say \"hi\"\t",
                "quoted \"name\"" = "v",
                "access"
            )
        });
        let ours = untimed(ours);
        assert_eq!(ours, untimed(theirs));
        assert_eq!(ours["username"], "alice \"the\" admin\n\u{1F600}");
        assert!(ours.get("refusal").is_none());
    }

    #[test]
    fn other_targets_are_the_standard_formats_lines() {
        let (ours, theirs) = both(|| tracing::warn!(target: "other", code = "x\"y", "a {}", 1));
        assert_eq!(untimed(ours), untimed(theirs));
    }

    #[test]
    fn timestamps_are_humantimes_across_seconds() {
        let mut line = Vec::new();
        let start = UNIX_EPOCH + Duration::from_micros(1_796_680_000_999_998);
        for step in [0, 1, 2, 3, 1_000_000, 86_400_000_000, 7] {
            let now = start + Duration::from_micros(step);
            line.clear();
            timestamp(&mut line, now);
            let expected = humantime::format_rfc3339_micros(now).to_string();
            assert_eq!(String::from_utf8(line.clone()).unwrap(), expected);
        }
    }
}
