//! components layer of Gatehouse.
