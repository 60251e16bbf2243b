//! The `tollgate` binary as users run it: the operator CLI, `serve`, shutdown,
//! several server processes on one database, and the contract-fuzzing gate.

mod bench;
mod billing;
mod browser;
mod cli;
mod contract_fuzz;
mod disk_full;
mod input;
mod invoicing;
mod metering;
mod metrics;
mod operator_ux;
mod readme;
mod replicas;
mod server;
mod stripe;
mod support;
mod webhooks;
