//! `tollgate`: the server and the operator CLI, on the same storage flags.

mod bench;
mod bench_all;
mod bench_durability;
mod bench_ingest;
mod bench_year;
mod cli;
mod credits;
mod invoice;
mod operator;
mod provider;
mod quota;
mod serve;
mod table;
mod usage;
mod webhook;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
