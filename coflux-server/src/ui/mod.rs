//! The web UI's building blocks. For now: the run graph's [`layout`]; the pages come next.

pub mod layout;
