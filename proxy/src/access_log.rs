//! The access log: one JSON line per request, written the way Nginx writes
//! `access_log ... buffer=64k flush=1s`. Each worker thread appends
//! preformatted lines to its own buffer (an uncontended lock, no syscall, no
//! allocation once warm); a full buffer (64 KiB) is written at once, and
//! [`flush_all`] — every second from a background task, and at exit — writes
//! whatever the others hold. Lines go to stderr (the journal under systemd),
//! whole lines per write, under stderr's lock so they never interleave with
//! the tracing lines.
//!
//! Fields: timestamp, method, path (no query: it may carry secrets), status,
//! upstream, duration_ms, trace_id (`x-amzn-trace-id`), error. Never a header
//! value of `x-amzn-oidc-*` or `Authorization`.

use std::cell::RefCell;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A buffer is written out when it holds this much.
pub const BUFFER_BYTES: usize = 64 * 1024;
/// Lines wait at most about this long in a buffer.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// One request's fields.
pub struct Entry<'a> {
    /// The request method: a token, as `http::Method` holds it (written unescaped).
    pub method: &'a str,
    /// The request path, without the query.
    pub path: &'a str,
    /// The status sent (0: none, the client went away first).
    pub status: u16,
    /// The upstream address of the last attempt.
    pub upstream: Option<SocketAddr>,
    /// From the request's arrival to the end of its response.
    pub duration: Duration,
    /// `x-amzn-trace-id`, when the request had one.
    pub trace_id: Option<&'a str>,
    /// Pingora's error type, when the request failed.
    pub error: Option<&'a str>,
}

type Buffer = Arc<Mutex<Vec<u8>>>;

/// Every thread's buffer, so the flusher can reach them.
static BUFFERS: Mutex<Vec<Buffer>> = Mutex::new(Vec::new());

thread_local! {
    static LOCAL: Buffer = register();
    /// The formatted timestamp up to the seconds, and for which second.
    static SECOND: RefCell<(u64, [u8; 19])> = const { RefCell::new((u64::MAX, [0; 19])) };
    /// The last upstream address written, and its text.
    static LAST_UPSTREAM: RefCell<(Option<SocketAddr>, Vec<u8>)> =
        const { RefCell::new((None, Vec::new())) };
}

fn lock(b: &Mutex<Vec<u8>>) -> MutexGuard<'_, Vec<u8>> {
    // A panic while appending leaves at worst a partial line; keep logging.
    b.lock().unwrap_or_else(PoisonError::into_inner)
}

fn register() -> Buffer {
    let b = Arc::new(Mutex::new(Vec::with_capacity(BUFFER_BYTES + 1024)));
    lock_all().push(b.clone());
    b
}

fn lock_all() -> MutexGuard<'static, Vec<Buffer>> {
    BUFFERS.lock().unwrap_or_else(PoisonError::into_inner)
}

fn write_out(buf: &mut Vec<u8>) {
    if buf.is_empty() {
        return;
    }
    // Nothing sensible to do when stderr is gone; the lines are dropped.
    let _ = std::io::stderr().lock().write_all(buf);
    buf.clear();
}

/// Appends one line to this thread's buffer; writes the buffer out when full.
pub fn log(entry: &Entry<'_>) {
    LOCAL.with(|b| {
        let mut buf = lock(b);
        format_line(&mut buf, entry, SystemTime::now());
        if buf.len() >= BUFFER_BYTES {
            write_out(&mut buf);
        }
    });
}

/// Writes out every thread's buffered lines.
pub fn flush_all() {
    for b in lock_all().iter() {
        write_out(&mut lock(b));
    }
}

/// Flushes every [`FLUSH_EVERY`], forever (a task of a background service).
pub async fn flush_periodically() {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        flush_all();
    }
}

/// The line, with a newline, appended to `out`.
pub fn format_line(out: &mut Vec<u8>, e: &Entry<'_>, now: SystemTime) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(out, now);
    out.extend_from_slice(b"\",\"level\":\"INFO\",\"target\":\"access\",\"method\":\"");
    // A method is a token (RFC 9110 5.6.2, which `http::Method` enforces):
    // no quote, backslash or control character to escape.
    out.extend_from_slice(e.method.as_bytes());
    out.extend_from_slice(b"\",\"path\":\"");
    escaped(out, e.path);
    out.extend_from_slice(b"\",\"status\":");
    out.extend_from_slice(itoa::Buffer::new().format(e.status).as_bytes());
    out.extend_from_slice(b",\"upstream\":\"");
    match e.upstream {
        // An address is plain ASCII: nothing to escape.
        Some(a) => upstream_text(out, a),
        None => out.push(b'-'),
    }
    out.extend_from_slice(b"\",\"duration_ms\":");
    // In u64 (half a million years of microseconds): u128 division and
    // formatting cost several times as much.
    let micros = u64::try_from(e.duration.as_micros()).unwrap_or(u64::MAX);
    out.extend_from_slice(itoa::Buffer::new().format(micros / 1000).as_bytes());
    out.push(b'.');
    let frac = (micros % 1000) as u16;
    out.extend_from_slice(&[
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
    out.extend_from_slice(b",\"trace_id\":\"");
    escaped(out, e.trace_id.unwrap_or("-"));
    out.extend_from_slice(b"\",\"error\":\"");
    escaped(out, e.error.unwrap_or(""));
    out.extend_from_slice(b"\"}\n");
}

/// `addr` as text, formatted once for as long as the thread's requests keep
/// going to it (most do: an upstream has few addresses).
fn upstream_text(out: &mut Vec<u8>, addr: SocketAddr) {
    LAST_UPSTREAM.with(|cell| {
        let mut cached = cell.borrow_mut();
        let (last, text) = &mut *cached;
        if *last != Some(addr) {
            text.clear();
            crate::ascii::put_socket_addr(text, addr);
            *last = Some(addr);
        }
        out.extend_from_slice(text);
    });
}

/// `s` as the inside of a JSON string.
fn escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        out.extend_from_slice(bytes);
        return;
    }
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            _ => out.push(b),
        }
    }
}

/// RFC 3339 UTC with microseconds: `2026-11-26T15:16:36.123456Z`. The part
/// up to the seconds is formatted once per second per thread.
fn timestamp(out: &mut Vec<u8>, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            *cached = (secs, civil(secs));
        }
        out.extend_from_slice(&cached.1);
    });
    out.push(b'.');
    let mut micros = since.subsec_micros();
    let mut digits = [b'0'; 6];
    for d in digits.iter_mut().rev() {
        *d = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    out.extend_from_slice(&digits);
    out.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SS` for Unix seconds (Howard Hinnant's civil_from_days).
fn civil(secs: u64) -> [u8; 19] {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut s = [0u8; 19];
    let mut put = |at: usize, v: i64, width: usize| {
        let mut v = v;
        for i in (0..width).rev() {
            s[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year, 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, (rem / 3600) as i64, 2);
    put(14, (rem / 60 % 60) as i64, 2);
    put(17, (rem % 60) as i64, 2);
    for (at, c) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
        s[at] = c;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(e: &Entry<'_>, now: SystemTime) -> String {
        let mut out = Vec::new();
        format_line(&mut out, e, now);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_line_is_one_json_object_with_every_field() {
        let now = UNIX_EPOCH + Duration::from_micros(1_795_000_000_123_456);
        let e = Entry {
            method: "GET",
            path: "/api/\"me\"\\\n",
            status: 200,
            upstream: Some("10.0.0.7:80".parse().unwrap()),
            duration: Duration::from_micros(12_345),
            trace_id: Some("Root=1-abc"),
            error: None,
        };
        let l = line(&e, now);
        assert!(l.ends_with("}\n") && l.matches('\n').count() == 1, "{l}");
        assert_eq!(
            l,
            "{\"timestamp\":\"2026-11-18T11:06:40.123456Z\",\"level\":\"INFO\",\
             \"target\":\"access\",\"method\":\"GET\",\"path\":\"/api/\\\"me\\\"\\\\\\u000a\",\
             \"status\":200,\"upstream\":\"10.0.0.7:80\",\"duration_ms\":12.345,\
             \"trace_id\":\"Root=1-abc\",\"error\":\"\"}\n"
        );
        let e = Entry {
            upstream: None,
            status: 0,
            duration: Duration::from_micros(7),
            trace_id: None,
            error: Some("ConnectRefused"),
            ..e
        };
        let l = line(&e, now);
        assert!(l.contains("\"status\":0,\"upstream\":\"-\",\"duration_ms\":0.007,\"trace_id\":\"-\",\"error\":\"ConnectRefused\""), "{l}");
    }

    #[test]
    fn each_line_has_its_own_upstream() {
        let now = UNIX_EPOCH;
        let e = |upstream: &str| Entry {
            method: "GET",
            path: "/",
            status: 200,
            upstream: Some(upstream.parse().unwrap()),
            duration: Duration::ZERO,
            trace_id: None,
            error: None,
        };
        for a in [
            "10.0.0.7:80",
            "10.0.0.7:80",
            "10.0.0.8:80",
            "[::1]:8080",
            "10.0.0.7:81",
        ] {
            let l = line(&e(a), now);
            let want = format!("\"upstream\":\"{a}\"");
            assert!(l.contains(&want), "{l}");
        }
    }

    #[test]
    fn civil_dates() {
        assert_eq!(&civil(0), b"1970-01-01T00:00:00");
        assert_eq!(&civil(951_782_400), b"2000-02-29T00:00:00");
        assert_eq!(&civil(4_102_444_799), b"2099-12-31T23:59:59");
    }
}
