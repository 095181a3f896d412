//! The clients of the two servers fleet talks to, below every stage that
//! talks to them: `live` reads through them and `apply` writes through
//! them, so neither stage depends on the other. Retrying what is safe to
//! retry, and explaining what a server refused, live here too.

pub mod explain;
pub mod jetstream;
pub mod kube;
pub mod retry;
