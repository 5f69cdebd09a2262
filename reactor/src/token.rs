//! Typed tokens: one `usize` carries what an event is for (kind) and which slab slot (index).
//!
//! The low two bits hold the kind so dispatch is a mask, not a lookup; the slab index sits
//! above. Reserved tokens (the inbox waker) live at the top of the range, out of any slab's reach.

/// What a readiness event refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A listening socket; the index is the listener number.
    Listener,
    /// The client side of a session; the index is the session slot.
    Client,
    /// An upstream connection owned by a pool; the index is the pool slot.
    Upstream,
    /// Reserved tokens (the inbox waker).
    Reserved,
}

/// A typed mio token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token(pub usize);

const KIND_BITS: usize = 2;
const KIND_MASK: usize = (1 << KIND_BITS) - 1;

impl Token {
    /// The token of the worker's inbox waker.
    pub const WAKER: Token = Token(usize::MAX);

    pub fn new(kind: Kind, index: usize) -> Token {
        let k = match kind {
            Kind::Listener => 0,
            Kind::Client => 1,
            Kind::Upstream => 2,
            Kind::Reserved => 3,
        };
        Token((index << KIND_BITS) | k)
    }

    pub fn kind(self) -> Kind {
        match self.0 & KIND_MASK {
            0 => Kind::Listener,
            1 => Kind::Client,
            2 => Kind::Upstream,
            _ => Kind::Reserved,
        }
    }

    pub fn index(self) -> usize {
        self.0 >> KIND_BITS
    }
}

impl From<Token> for mio::Token {
    fn from(t: Token) -> mio::Token {
        mio::Token(t.0)
    }
}

impl From<mio::Token> for Token {
    fn from(t: mio::Token) -> Token {
        Token(t.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for kind in [Kind::Listener, Kind::Client, Kind::Upstream] {
            for index in [0usize, 1, 7, 1 << 20] {
                let t = Token::new(kind, index);
                assert_eq!(t.kind(), kind);
                assert_eq!(t.index(), index);
            }
        }
        assert_eq!(Token::WAKER.kind(), Kind::Reserved);
    }
}
