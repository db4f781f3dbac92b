//! `coflux`: the command-line client of a Coflux-rs server.

use std::process::ExitCode;

use clap::Parser;
use coflux_agent::cli::{self, Cli};

#[actix_rt::main]
async fn main() -> ExitCode {
    let args = Cli::parse();
    match cli::run(args).await {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
