//! Client side of the signed schemes, written from the docs as an app would: HS256 JWTs and
//! hmac_auth request heads (signing string, Digest, IMF-fixdate), with ring and base64.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::{digest, hmac};

pub const JWT_SECRET: &str = "e2e-jwt-secret-0123456789abcdef-0123456";
pub const HMAC_SECRET: &str = "e2e-hmac-secret-0123456789abcdef-012345";

/// An HS256 token over `claims`, signed with [`JWT_SECRET`].
pub fn mint(claims: &str) -> String {
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, JWT_SECRET.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(hmac::sign(&key, signed.as_bytes()));
    format!("{signed}.{sig}")
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) of a unix time.
pub fn http_date(t: u64) -> String {
    let days = (t / 86_400) as i64;
    let secs = t % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WD[(days.rem_euclid(7)) as usize],
        MON[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A signed hmac_auth request head for `POST /orders` with `body`.
pub fn hmac_head(nonce: &str, body: &[u8]) -> String {
    let date = http_date(super::unix_now());
    let d = STANDARD.encode(digest::digest(&digest::SHA256, body));
    let signing = format!(
        "(request-target): post /orders\ndate: {date}\nx-nonce: {nonce}\ndigest: SHA-256={d}"
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, HMAC_SECRET.as_bytes());
    let sig = STANDARD.encode(hmac::sign(&key, signing.as_bytes()));
    format!(
        "POST /orders HTTP/1.1\nDate: {date}\nX-Nonce: {nonce}\nDigest: SHA-256={d}\n\
         Authorization: hmac-auth-v1 keyId=\"k1\",algorithm=\"hmac-sha256\",\
         headers=\"(request-target) date x-nonce digest\",signature=\"{sig}\"\n"
    )
}
