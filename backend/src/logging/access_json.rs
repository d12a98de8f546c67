//! The access line as a JSON line, written by a layer of its own: the same
//! object `tracing-subscriber`'s JSON format writes (`timestamp`, `level`,
//! `message`, the fields, `target`), serialised straight into a byte buffer.
//!
//! Why a layer of its own: the access line is the one event of every
//! request, and `tracing-subscriber`'s JSON format hands each fragment of
//! each field (a quote, a key, a colon) through a `fmt::Write` adaptor that
//! checks it as UTF-8 again; for the access line's dozen fields that was
//! most of the cost of a cached request. Every other event, rare and
//! diverse, keeps the standard format.

use std::cell::RefCell;
use std::fmt;
use std::io::Write;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};

/// The target of the access line (cognito-verifier's `access_log` and
/// `AccessLine` write it).
pub const TARGET: &str = "access";

/// Writes each event it sees as one JSON line to its writer; filtered to
/// [`TARGET`] where it is added.
pub struct AccessJson<W> {
    make_writer: W,
}

impl<W> AccessJson<W> {
    /// Lines go to `make_writer`.
    pub fn new(make_writer: W) -> Self {
        AccessJson { make_writer }
    }
}

impl<S, W> Layer<S> for AccessJson<W>
where
    S: Subscriber,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        thread_local! {
            static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        LINE.with_borrow_mut(|line| {
            line.clear();
            format_line(line, event);
            // Nowhere to report a failed write of the log itself.
            let _ = self.make_writer.make_writer().write_all(line);
        });
    }
}

/// `{"timestamp":…,"level":…,<fields>,"target":…}` and a newline.
fn format_line(line: &mut Vec<u8>, event: &Event<'_>) {
    let meta = event.metadata();
    // The format of the other lines: RFC 3339, microseconds, UTC.
    let now = humantime::format_rfc3339_micros(std::time::SystemTime::now());
    let _ = write!(line, "{{\"timestamp\":\"{now}\"");
    line.extend_from_slice(b",\"level\":");
    json(line, meta.level().as_str());
    event.record(&mut Fields(line));
    line.extend_from_slice(b",\"target\":");
    json(line, meta.target());
    line.extend_from_slice(b"}\n");
}

fn json<T: serde::Serialize + ?Sized>(line: &mut Vec<u8>, value: &T) {
    // Writing into a Vec cannot fail, and strings, numbers and bools always serialise.
    let _ = serde_json::to_writer(&mut *line, value);
}

/// Each field as `,"name":value`: strings and numbers as JSON, anything
/// else by its `Debug` text (the message is a `fmt::Arguments`).
struct Fields<'a>(&'a mut Vec<u8>);

impl Fields<'_> {
    fn key(&mut self, field: &Field) {
        let name = field.name();
        // A field name is a Rust identifier (or a dotted path) but for the rare
        // quoted one: only that needs escaping.
        if name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        {
            self.0.push(b',');
            self.0.push(b'"');
            self.0.extend_from_slice(name.as_bytes());
            self.0.extend_from_slice(b"\":");
        } else {
            self.0.push(b',');
            json(self.0, name);
            self.0.push(b':');
        }
    }
}

impl Fields<'_> {
    fn entry<T: serde::Serialize + ?Sized>(&mut self, field: &Field, value: &T) {
        self.key(field);
        json(self.0, value);
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, value);
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
        self.entry(field, &format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
    use tracing_subscriber::filter::filter_fn;
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

    impl Write for Captured {
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
            .with(AccessJson::new(ours.clone()).with_filter(filter_fn(|m| m.target() == TARGET)))
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

    #[test]
    fn the_line_is_the_object_the_standard_json_format_writes() {
        let (mut ours, mut theirs) = both(|| {
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
                "quoted \"name\"" = "v",
                "access"
            )
        });
        // The same shape: 2026-12-07T21:25:29.015410Z.
        let shape = |line: &Value| -> String {
            let t = line["timestamp"].as_str().unwrap();
            t.chars()
                .map(|c| if c.is_ascii_digit() { '0' } else { c })
                .collect()
        };
        assert_eq!(shape(&ours), "0000-00-00T00:00:00.000000Z");
        assert_eq!(shape(&ours), shape(&theirs));
        ours.as_object_mut().unwrap().remove("timestamp");
        theirs.as_object_mut().unwrap().remove("timestamp");
        assert_eq!(ours, theirs);
        assert_eq!(ours["username"], "alice \"the\" admin\n\u{1F600}");
        assert!(ours.get("refusal").is_none());
    }

    #[test]
    fn other_targets_are_not_written() {
        let ours = Captured::default();
        let subscriber = tracing_subscriber::registry()
            .with(AccessJson::new(ours.clone()).with_filter(filter_fn(|m| m.target() == TARGET)));
        tracing::subscriber::with_default(subscriber, || tracing::info!(target: "other", "x"));
        assert!(ours.0.lock().unwrap().is_empty());
    }
}
