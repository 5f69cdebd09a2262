//! HTTP/1.1 codec (RFC 9112), strict.
