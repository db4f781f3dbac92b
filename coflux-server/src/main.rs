//! `coflux-server`: parses configuration and serves the app built by the library.

use std::io::IsTerminal;

use clap::Parser;
use coflux_server::config::{ServerArgs, ServerConfig};

/// mimalloc: glibc's malloc was a third of the server's CPU per task in a wide fan-out
/// (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("COFLUX_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal (log files and CI output stay plain), never with NO_COLOR.
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();
    let config = ServerConfig::from_args(ServerArgs::parse())?;
    coflux_server::serve(config).await
}
