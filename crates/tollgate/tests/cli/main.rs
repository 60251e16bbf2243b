//! The `tollgate` binary as users run it: the operator CLI, `serve`, shutdown,
//! and several server processes on one database.

mod billing;
mod cli;
mod disk_full;
mod input;
mod invoicing;
mod metering;
mod replicas;
mod server;
mod support;
