//! protocols layer of Gatehouse.
