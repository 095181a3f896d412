//! live: the only reads. What the cluster holds for the fleet: the objects
//! fleet owns (one LIST per kind, by label), same-named objects it does not
//! own, and which kinds' APIs are installed.

pub mod jetstream;
pub mod kube;
mod page;
