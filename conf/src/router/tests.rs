//! Router tests (filled in next).
