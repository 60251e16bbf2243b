//! Tollgate's domain: the rules of quotas, access and names, free of I/O.
//!
//! Nothing in this crate reads the wall clock, touches a database or knows about
//! HTTP. Time arrives through [`clock::Clock`]; storage and wire formats live in
//! the `store` and `api` crates.

pub mod access;
pub mod audit;
pub mod catalog;
pub mod clock;
pub mod contact;
pub mod credit_note;
pub mod credits;
pub mod currency;
pub mod dunning;
pub mod error;
pub mod ids;
pub mod invoice;
pub mod labels;
pub mod metering;
pub mod names;
pub mod object;
pub mod payment;
pub mod quota;
pub mod rate_limit;
pub mod rating;
pub mod subscription;
pub mod tenant;
pub mod text;
pub mod token;
pub mod transition;
pub mod webhook;

pub use error::{Error, ErrorKind, Reason};
