//! Parsing of the HTTP `Date` format (IMF-fixdate, RFC 9110 5.6.7) into unix seconds, without
//! allocation. Only IMF-fixdate is accepted: it is what every HTTP library emits, and the two
//! obsolete formats would only widen what a signer and the gateway might read differently.

/// `Sun, 06 Nov 1994 08:49:37 GMT` -> seconds since the epoch; `None` for anything else. The
/// weekday must be a valid name but is not cross-checked against the date.
pub fn parse_http_date(v: &[u8]) -> Option<u64> {
    let v: &[u8; 29] = v.try_into().ok()?;
    const DAYS: [&[u8; 3]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let [w0, w1, w2, b',', b' ', d0, d1, b' ', m0, m1, m2, b' ', y0, y1, y2, y3, b' ', h0, h1, b':', i0, i1, b':', s0, s1, b' ', b'G', b'M', b'T'] =
        *v
    else {
        return None;
    };
    if !DAYS.contains(&&[w0, w1, w2]) {
        return None;
    }
    let month = MONTHS.iter().position(|m| **m == [m0, m1, m2])? as u64 + 1;
    let day = digits(&[d0, d1])?;
    let year = digits(&[y0, y1, y2, y3])?;
    let (hour, min, sec) = (digits(&[h0, h1])?, digits(&[i0, i1])?, digits(&[s0, s1])?);
    if year < 1970 || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    // 60 admits a leap second as written by some clocks; it simply reads as the next second.
    if hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec)
}

fn digits(d: &[u8]) -> Option<u64> {
    d.iter().try_fold(0u64, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date, year >= 1970 (H. Hinnant's method:
/// count from 1 March so the leap day ends the year).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats unix seconds as IMF-fixdate into a fixed buffer (for clients, tests and the bench).
pub fn format_http_date(secs: u64) -> [u8; 29] {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Inverse of days_from_civil.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    let put = |out: &mut [u8; 29], at: usize, v: u64, width: usize| {
        let mut v = v;
        for i in (at..at + width).rev() {
            if let Some(o) = out.get_mut(i) {
                *o = b'0' + (v % 10) as u8;
            }
            v /= 10;
        }
    };
    let name = |names: &[&'static str], i: u64| names.get(i as usize).copied().unwrap_or("???");
    out[..3].copy_from_slice(name(&DAYS, days % 7).as_bytes());
    put(&mut out, 5, day, 2);
    out[8..11].copy_from_slice(name(&MONTHS, month - 1).as_bytes());
    put(&mut out, 12, year, 4);
    put(&mut out, 17, rem / 3600, 2);
    put(&mut out, 20, rem % 3600 / 60, 2);
    put(&mut out, 23, rem % 60, 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_dates() {
        assert_eq!(
            parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date(b"Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date(b"Tue, 14 Nov 2023 22:13:20 GMT"),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_http_date(b"Thu, 29 Feb 2024 12:00:00 GMT"),
            Some(1_709_208_000)
        );
    }

    #[test]
    fn refuses_other_shapes() {
        for bad in [
            &b"Sunday, 06-Nov-94 08:49:37 GMT"[..],
            b"Sun Nov  6 08:49:37 1994",
            b"Sun, 06 Nov 1994 08:49:37 UTC",
            b"Xyz, 06 Nov 1994 08:49:37 GMT",
            b"Sun, 31 Nov 1994 08:49:37 GMT",
            b"Sun, 29 Feb 2023 08:49:37 GMT",
            b"Sun, 06 Nov 1994 24:00:00 GMT",
            b"Sun, 06 Nov 1969 08:49:37 GMT",
            b"Sun, 0x Nov 1994 08:49:37 GMT",
            b"",
        ] {
            assert_eq!(
                parse_http_date(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn format_round_trips() {
        for secs in [0, 784_111_777, 1_700_000_000, 1_709_208_000, 4_102_444_799] {
            assert_eq!(parse_http_date(&format_http_date(secs)), Some(secs));
        }
        assert_eq!(
            &format_http_date(784_111_777),
            b"Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }
}
