//! jrun's pairing relay server (jrun relay).
