//! business layer of Gatehouse.
