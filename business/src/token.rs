//! Minting HS256 JWTs, for the demo (which prints a ready-made token) and for tests. The
//! gateway itself only verifies tokens (`modules::jwt`); this is the client side of that.

use crate::modules::key_auth::common::B64_URL;
use base64::Engine as _;
use ring::hmac;

/// A compact HS256 token over `claims` (a JSON object), signed with `secret`.
pub fn mint_hs256(secret: &[u8], claims: &str) -> String {
    let signed = format!(
        "{}.{}",
        B64_URL.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        B64_URL.encode(claims)
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let sig = hmac::sign(&key, signed.as_bytes());
    format!("{signed}.{}", B64_URL.encode(sig.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::jwt::{Jwt, JwtConfig};
    use crate::modules::key_auth::consumer::{Consumer, ConsumerIndex};

    #[test]
    fn minted_tokens_verify_with_the_engine() {
        let secret = "demo-secret-0123456789abcdef-0123456789";
        let consumers: Vec<Consumer> = serde_json::from_str(&format!(
            r#"[{{"id": "demo", "jwt": {{"algorithm": "HS256", "key": "{secret}"}}}}]"#
        ))
        .unwrap();
        let idx = ConsumerIndex::compile(&consumers).unwrap();
        let jwt = Jwt::compile(&JwtConfig::default()).unwrap();
        let token = mint_hs256(secret.as_bytes(), r#"{"key":"demo","exp":4000000000}"#);
        let mut scratch = vec![0; jwt.scratch_len()];
        let m = jwt
            .verify_token(token.as_bytes(), &idx, 1_700_000_000, &mut scratch)
            .unwrap();
        assert_eq!(m.consumer.id, "demo");
    }
}
