//! Stripe: the form encoding of its API's parameters ([`form`]) and its
//! webhook signatures ([`webhook`]).

pub mod form;
pub mod webhook;
