//! The pure core: rules with no HTTP, no SQL and no I/O. Every door (Leitwert REST,
//! hawkBit DDI, DMF, the admin API and UI) reaches these through `service::*`.

pub mod attributes;
pub mod ddi;
pub mod digests;
pub mod dmf;
pub mod ids;
pub mod procedure;
pub mod rights;
pub mod selection;
pub mod session;
pub mod version;
