//! reactor layer of Gatehouse.
