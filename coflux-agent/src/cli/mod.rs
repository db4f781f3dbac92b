//! The `coflux` command-line client: talks to a Coflux-rs server over its HTTP API.
//!
//! - [`args`]: the command line (clap);
//! - [`client`]: the HTTP client;
//! - [`output`]: text rendering of the server's answers (their types are
//!   [`coflux_core::protocol::http`]);
//! - one module per command group: [`projects`], [`environments`], [`manifests`], [`submit`],
//!   [`runs`], [`runs_list`], [`logs`], [`assets`], [`sessions`], [`queue`].
//!
//! [`run`] executes a parsed command line; the binary prints its error as
//! `error: <message>` and exits with [`Exit::code`].

pub mod args;
pub mod assets;
pub mod client;
pub mod config;
pub mod environments;
pub mod error;
pub mod fanout;
pub mod inputs;
pub mod limits;
pub mod logs;
pub mod manifests;
pub mod output;
pub mod projects;
pub mod queue;
pub mod runs;
pub mod runs_list;
pub mod schedules;
pub mod sessions;
pub mod submit;
pub mod tokens;

use std::io::Write;

pub use args::{Cli, Command, GlobalArgs, OutputFormat};
pub use client::Client;
pub use error::CliError;

use serde_json::Value as Json;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It did what was asked.
    Success,
    /// It ran, and what it reports is a failure (e.g. a run that ended with an error).
    Failure,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Failure => 1,
        }
    }
}

/// What every command needs: the client and the global options.
pub struct Context {
    /// The server client.
    pub client: Client,
    /// The global options.
    pub global: GlobalArgs,
}

impl Context {
    /// The project, or a usage error naming how to give one.
    pub fn project(&self) -> Result<&str, CliError> {
        self.global.project.as_deref().ok_or_else(|| {
            CliError::Usage("no project given: use --project NAME, set COFLUX_PROJECT or add project to coflux.toml".into())
        })
    }

    /// The environment, or a usage error naming how to give one.
    pub fn environment(&self) -> Result<&str, CliError> {
        self.global.environment.as_deref().ok_or_else(|| {
            CliError::Usage(
                "no environment given: use --environment NAME, set COFLUX_ENVIRONMENT or add environment to coflux.toml".into(),
            )
        })
    }

    /// `/api/projects/{project}` with the project percent-encoded.
    pub fn project_path(&self) -> Result<String, CliError> {
        Ok(format!(
            "/api/projects/{}",
            client::segment(self.project()?)
        ))
    }

    /// Whether output is JSON.
    pub fn json(&self) -> bool {
        self.global.output == OutputFormat::Json
    }

    /// Prints a server answer: as JSON with `--output json`, otherwise as the text `render`
    /// makes of it, decoded as a `T`.
    pub fn show<T: serde::de::DeserializeOwned>(
        &self,
        answer: &Json,
        render: impl FnOnce(T) -> String,
    ) -> Result<(), CliError> {
        if self.json() {
            return self.print_json(answer);
        }
        self.print(&render(client::typed(answer)?))
    }

    /// Prints text to stdout.
    pub fn print(&self, text: &str) -> Result<(), CliError> {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            out.write_all(b"\n")?;
        }
        out.flush()?;
        Ok(())
    }

    /// Prints JSON (pretty) to stdout.
    pub fn print_json(&self, value: &Json) -> Result<(), CliError> {
        self.print(&output::json_text(value))
    }
}

/// Runs a parsed command line (with the defaults of the nearest `coflux.toml`).
pub async fn run(mut cli: Cli) -> Result<Exit, CliError> {
    if let Some((_, file)) = config::FileConfig::load()? {
        cli.global = cli.global.with_file(&file);
    }
    crate::net::set_token(cli.global.token.clone());
    let ctx = Context {
        client: Client::new(cli.global.server_url()),
        global: cli.global,
    };
    match cli.command {
        Command::Projects { command } => projects::run(&ctx, command).await,
        Command::Tokens { command } => tokens::run(&ctx, command).await,
        Command::Sessions { command } => sessions::run(&ctx, command).await,
        Command::Queue { limit } => queue::run(&ctx, limit).await,
        Command::Environments { command } => environments::run(&ctx, command).await,
        Command::Manifests { command } => manifests::run(&ctx, command).await,
        Command::Limits { command } => limits::run(&ctx, command).await,
        Command::Schedules { command } => schedules::run(&ctx, command).await,
        Command::Inputs { command } => inputs::run(&ctx, command).await,
        Command::Submit(args) => submit::run(&ctx, args).await,
        Command::Runs { command } => runs::run(&ctx, command).await,
        Command::Logs(args) => logs::run(&ctx, args).await,
        Command::Assets { command } => assets::run(&ctx, command).await,
    }
}
