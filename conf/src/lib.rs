//! conf layer of Gatehouse.
