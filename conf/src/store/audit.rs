//! Audit records: who changed what, when, and which version it made. One JSON object per line
//! in the store, so the log can be read with `tail`/`jq` as well as through the admin API.

use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// One accepted change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// RFC 3339 UTC with milliseconds: `2026-04-20T09:15:02.431Z`.
    pub time: String,
    /// The API key's label when a key is configured, else the client address.
    pub who: String,
    /// Client address (`ip:port`) of the admin connection.
    pub client: String,
    /// `PUT`, `DELETE`, ...
    pub method: String,
    /// Request path, as sent.
    pub path: String,
    pub kind: String,
    pub id: String,
    /// The config version the change produced.
    pub version: u64,
    /// HTTP status of the answer (201 created, 200 replaced, 204 deleted).
    pub status: u16,
}

/// `t` as RFC 3339 UTC with milliseconds (`1970-01-01T00:00:00.000Z` for times before 1970).
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        d.subsec_millis()
    )
}

/// The current time in [`rfc3339`] form.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// Proleptic Gregorian date of day `z` counted from 1970-01-01. Works in 400-year eras (each
/// exactly 146,097 days), with years starting in March so the leap day ends a year.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of (March-based) year
    let mp = (5 * doy + 2) / 153; // month, March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, millis: u64) -> String {
        rfc3339(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis))
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z"); // leap day of a /400 year
        assert_eq!(at(951_868_799, 999), "2000-02-29T23:59:59.999Z");
        assert_eq!(at(1_709_251_199, 0), "2024-02-29T23:59:59.000Z");
        assert_eq!(at(4_102_444_800, 0), "2100-01-01T00:00:00.000Z");
        assert_eq!(at(1_234_567_890, 120), "2009-02-13T23:31:30.120Z");
    }

    #[test]
    fn every_day_follows_the_previous_one() {
        // Walks 1970..2400 day by day: the date always advances by exactly one day.
        let mut prev = civil_from_days(0);
        for z in 1..157_000 {
            let d = civil_from_days(z);
            let (py, pm, pd) = prev;
            let next_day = d == (py, pm, pd + 1);
            let next_month = d == (py, pm + 1, 1) && pd >= 28;
            let next_year = d == (py + 1, 1, 1) && (pm, pd) == (12, 31);
            assert!(next_day || next_month || next_year, "{prev:?} -> {d:?}");
            prev = d;
        }
    }

    #[test]
    fn records_are_one_json_line() {
        let r = AuditRecord {
            time: at(0, 0),
            who: "127.0.0.1:5000".into(),
            client: "127.0.0.1:5000".into(),
            method: "PUT".into(),
            path: "/admin/v1/routes/r".into(),
            kind: "routes".into(),
            id: "r".into(),
            version: 3,
            status: 201,
        };
        let line = serde_json::to_string(&r).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<AuditRecord>(&line).unwrap(), r);
    }
}
