//! ip_list engine.
