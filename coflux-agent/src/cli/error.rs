//! [`CliError`]: why a `coflux` command failed.

/// Why a command failed. `main` prints it as `error: <display>` and exits with status 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server answered with an API error.
    #[error("{message} ({code})")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The stable error code.
        code: String,
        /// The server's message.
        message: String,
    },
    /// The server could not be reached.
    #[error(
        "could not connect to the Coflux server at {server}: {detail} (is it running? use --server or COFLUX_SERVER)"
    )]
    Connect {
        /// The server URL.
        server: String,
        /// What went wrong.
        detail: String,
    },
    /// The server did not answer in time.
    #[error("the Coflux server at {server} did not answer in time")]
    Timeout {
        /// The server URL.
        server: String,
    },
    /// The server's answer was not what this client expects.
    #[error("unexpected response from the server: {0}")]
    Protocol(String),
    /// The command line was incomplete or invalid.
    #[error("{0}")]
    Usage(String),
    /// A local file could not be read.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A `coflux.toml` could not be read.
    #[error("{0}")]
    Config(#[from] super::config::ConfigError),
    /// Discovering a repository's targets failed.
    #[error("{0}")]
    Discovery(#[from] crate::executor::DiscoveryError),
    /// Writing the output failed.
    #[error("output failed: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    /// The API error code, if the server reported one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}
