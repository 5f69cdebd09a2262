//! A record as one JSON object on one line, written into a reused buffer by hand: the
//! logger thread formats every request, and doing it without `String`s or serde keeps it
//! allocation-free once its buffer is warm (the alloc test counts the whole process).
//!
//! Text fields come from the wire and may hold any byte: everything outside printable ASCII,
//! and `"` and `\`, is escaped, bytes >= 0x80 as `\u00XX` (the byte's value), so a line is
//! always ASCII and always valid JSON.

use super::record::{error_detail, Inline, Record};
use business::calls::CallOutcome;
use std::io::Write;

/// Appends `r` as a JSON object (no newline).
pub fn write_json(r: &Record, o: &mut Vec<u8>) {
    o.extend_from_slice(b"{\"time\":\"");
    put_time(o, r.time_us);
    o.extend_from_slice(b"\",\"request_id\":");
    put_str(o, &r.request_id);
    o.extend_from_slice(b",\"worker\":");
    put_u64(o, r.worker as u64);
    o.extend_from_slice(b",\"source\":\"");
    o.extend_from_slice(r.source.name().as_bytes());
    o.extend_from_slice(b"\",\"status\":");
    put_u64(o, r.status as u64);
    o.extend_from_slice(b",\"error\":");
    match r.error {
        Some(k) => {
            o.push(b'"');
            o.extend_from_slice(k.code().as_bytes());
            o.push(b'"');
        }
        None => o.extend_from_slice(b"null"),
    }
    o.extend_from_slice(b",\"error_detail\":");
    match r.error.and_then(error_detail) {
        Some(d) => put_raw_str(o, d.as_bytes()),
        None => o.extend_from_slice(b"null"),
    }
    o.extend_from_slice(b",\"method\":");
    put_str(o, &r.method);
    o.extend_from_slice(b",\"host\":");
    put_str(o, &r.host);
    o.extend_from_slice(b",\"path\":");
    put_str(o, &r.path);
    o.extend_from_slice(b",\"path_truncated\":");
    put_bool(o, r.path.truncated());
    o.extend_from_slice(b",\"client_ip\":\"");
    let _ = write!(o, "{}", r.client_ip);
    o.extend_from_slice(b"\",\"peer\":\"");
    let _ = write!(o, "{}", r.peer);
    o.extend_from_slice(b"\",\"route\":");
    put_str(o, &r.route);
    o.extend_from_slice(b",\"upstream\":");
    put_str(o, &r.upstream);
    o.extend_from_slice(b",\"upstream_addr\":");
    match r.upstream_addr {
        Some(a) => {
            o.push(b'"');
            let _ = write!(o, "{a}");
            o.push(b'"');
        }
        None => o.extend_from_slice(b"null"),
    }
    o.extend_from_slice(b",\"consumer\":");
    put_str(o, &r.consumer);
    o.extend_from_slice(b",\"calls\":[");
    for (i, c) in r.calls.iter().take(r.calls_len as usize).enumerate() {
        if i > 0 {
            o.push(b',');
        }
        match c {
            CallOutcome::Status(s) => put_u64(o, *s as u64),
            CallOutcome::Failed => o.extend_from_slice(b"\"failed\""),
            CallOutcome::TimedOut => o.extend_from_slice(b"\"timed_out\""),
            CallOutcome::Pending => o.extend_from_slice(b"\"pending\""),
        }
    }
    o.extend_from_slice(b"],\"bytes_in\":");
    put_u64(o, r.bytes_in);
    o.extend_from_slice(b",\"bytes_out\":");
    put_u64(o, r.bytes_out);
    o.extend_from_slice(b",\"duration_us\":");
    put_u64(o, r.duration_us);
    o.extend_from_slice(b",\"upstream_us\":");
    match r.upstream_us {
        Some(us) => put_u64(o, us),
        None => o.extend_from_slice(b"null"),
    }
    o.extend_from_slice(b",\"config_version\":");
    put_u64(o, r.config_version);
    o.extend_from_slice(b",\"retried\":");
    put_bool(o, r.retried);
    o.push(b'}');
}

fn put_bool(o: &mut Vec<u8>, v: bool) {
    o.extend_from_slice(if v { b"true" } else { b"false" });
}

/// A string field; `null` when empty (the value was absent: no route, no consumer...).
fn put_str<const N: usize>(o: &mut Vec<u8>, v: &Inline<N>) {
    if v.is_empty() {
        o.extend_from_slice(b"null");
    } else {
        put_raw_str(o, v.as_bytes());
    }
}

fn put_raw_str(o: &mut Vec<u8>, v: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    o.push(b'"');
    for &b in v {
        match b {
            b'"' | b'\\' => o.extend_from_slice(&[b'\\', b]),
            0x20..=0x7e => o.push(b),
            _ => o.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]),
        }
    }
    o.push(b'"');
}

/// Decimal digits of `v`.
pub fn put_u64(o: &mut Vec<u8>, mut v: u64) {
    let mut d = [0u8; 20];
    let mut i = d.len();
    loop {
        i -= 1;
        d[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    o.extend_from_slice(&d[i..]);
}

/// `v` in exactly `width` digits (zero-padded; `v` must fit).
fn put_padded(o: &mut Vec<u8>, v: u64, width: usize) {
    let mut d = [b'0'; 20];
    let mut v = v;
    for slot in d[..width].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    o.extend_from_slice(&d[..width]);
}

/// The civil (proleptic Gregorian) date of a day count since 1970-01-01, by the
/// era-of-400-years method (eras repeat exactly every 146097 days).
fn civil_from_days(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u64, day as u64)
}

/// RFC 3339 UTC with microseconds: `2024-05-01T12:00:00.123456Z` (also RFC 5424's TIMESTAMP).
pub fn put_time(o: &mut Vec<u8>, us: u64) {
    let secs = us / 1_000_000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    put_padded(o, y.max(0) as u64, 4);
    o.push(b'-');
    put_padded(o, m, 2);
    o.push(b'-');
    put_padded(o, d, 2);
    o.push(b'T');
    put_padded(o, rem / 3600, 2);
    o.push(b':');
    put_padded(o, rem / 60 % 60, 2);
    o.push(b':');
    put_padded(o, rem % 60, 2);
    o.push(b'.');
    put_padded(o, us % 1_000_000, 6);
    o.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::super::record::Source;
    use super::*;
    use protocols::error::ErrorKind;

    fn time(us: u64) -> String {
        let mut o = Vec::new();
        put_time(&mut o, us);
        String::from_utf8(o).unwrap()
    }

    #[test]
    fn times() {
        assert_eq!(time(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(time(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
        assert_eq!(time(1_709_251_199_999_999), "2024-02-29T23:59:59.999999Z");
        assert_eq!(time(4_102_444_800_000_000), "2100-01-01T00:00:00.000000Z");
        assert_eq!(time(1_234_567_890_123_456), "2009-02-13T23:31:30.123456Z");
    }

    #[test]
    fn numbers() {
        for v in [0u64, 7, 10, 999, 1_000_001, u64::MAX] {
            let mut o = Vec::new();
            put_u64(&mut o, v);
            assert_eq!(o, v.to_string().as_bytes());
        }
    }

    #[test]
    fn a_full_record_is_valid_json_with_every_field() {
        let mut r = Record::EMPTY;
        r.time_us = 1_234_567_890_123_456;
        r.worker = 3;
        r.source = Source::Gateway;
        r.status = 403;
        r.error = Some(ErrorKind::Forbidden("ip_denied"));
        r.request_id.set(b"abc-1");
        r.client_ip = "10.0.0.9".parse().unwrap();
        r.peer = "[::1]:4000".parse().unwrap();
        r.method.set(b"GET");
        r.host.set(b"shop.example");
        r.path.set(b"/a\"b\\c\x01\xff");
        r.route.set(b"shop");
        r.upstream.set(b"up");
        r.upstream_addr = Some("127.0.0.1:81".parse().unwrap());
        r.calls[0] = CallOutcome::Status(200);
        r.calls[1] = CallOutcome::TimedOut;
        r.calls_len = 2;
        r.bytes_in = 10;
        r.bytes_out = 20;
        r.duration_us = 30;
        r.upstream_us = Some(25);
        r.config_version = 4;
        let mut o = Vec::new();
        write_json(&r, &mut o);
        assert!(o.is_ascii());
        let v: serde_json::Value = serde_json::from_slice(&o).unwrap();
        assert_eq!(v["time"], "2009-02-13T23:31:30.123456Z");
        assert_eq!(v["request_id"], "abc-1");
        assert_eq!(v["worker"], 3);
        assert_eq!(v["source"], "gateway");
        assert_eq!(v["status"], 403);
        assert_eq!(v["error"], "forbidden");
        assert_eq!(v["error_detail"], "ip_denied");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["host"], "shop.example");
        assert_eq!(v["path"], "/a\"b\\c\u{1}\u{ff}");
        assert_eq!(v["path_truncated"], false);
        assert_eq!(v["client_ip"], "10.0.0.9");
        assert_eq!(v["peer"], "[::1]:4000");
        assert_eq!(v["route"], "shop");
        assert_eq!(v["upstream"], "up");
        assert_eq!(v["upstream_addr"], "127.0.0.1:81");
        assert_eq!(v["consumer"], serde_json::Value::Null);
        assert_eq!(v["calls"], serde_json::json!([200, "timed_out"]));
        assert_eq!(v["bytes_in"], 10);
        assert_eq!(v["bytes_out"], 20);
        assert_eq!(v["duration_us"], 30);
        assert_eq!(v["upstream_us"], 25);
        assert_eq!(v["config_version"], 4);
        assert_eq!(v["retried"], false);
        assert_eq!(
            v.as_object().unwrap().len(),
            24,
            "docs/access-log.md lists 24 fields"
        );
    }

    #[test]
    fn empty_values_are_null_and_long_paths_flagged() {
        let mut r = Record::EMPTY;
        r.path.set(&[b'a'; 600]);
        let mut o = Vec::new();
        write_json(&r, &mut o);
        let v: serde_json::Value = serde_json::from_slice(&o).unwrap();
        assert_eq!(v["path"].as_str().unwrap().len(), 512);
        assert_eq!(v["path_truncated"], true);
        for k in ["request_id", "method", "host", "route", "upstream", "error"] {
            assert!(v[k].is_null(), "{k}");
        }
        assert_eq!(v["upstream_us"], serde_json::Value::Null);
    }
}
