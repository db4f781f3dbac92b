//! Command-line arguments of `coflux` (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The default server URL.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7777";

/// `coflux`: the command-line client of a Coflux-rs server.
#[derive(Debug, Parser)]
#[command(
    name = "coflux",
    version,
    about = "Command-line client for a Coflux-rs server: projects, environments, manifests, runs, logs and assets",
    propagate_version = true
)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command (flags override `COFLUX_*` environment variables, which
/// override the nearest `coflux.toml`).
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// URL of the Coflux server [default: http://127.0.0.1:7777], or the URLs of several nodes
    /// of a cluster separated by commas (the first reachable one is used).
    #[arg(long, global = true, env = "COFLUX_SERVER")]
    pub server: Option<String>,
    /// Access token, for a server started with `--auth tokens`.
    #[arg(long, global = true, env = "COFLUX_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Project to work in.
    #[arg(long, short = 'p', global = true, env = "COFLUX_PROJECT")]
    pub project: Option<String>,
    /// Environment to work in (for `runs rerun`: where the new attempt runs).
    #[arg(long, short = 'e', global = true, env = "COFLUX_ENVIRONMENT")]
    pub environment: Option<String>,
    /// Output format: human-readable text, or JSON for scripts.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

impl GlobalArgs {
    /// Fills what neither a flag nor an environment variable gave from a `coflux.toml`.
    pub fn with_file(mut self, file: &super::config::FileConfig) -> Self {
        self.server = self.server.or_else(|| file.server_url());
        self.token = self.token.or_else(|| file.token.clone());
        self.project = self.project.or_else(|| file.project.clone());
        self.environment = self.environment.or_else(|| file.environment_name());
        self
    }

    /// The server URL (the default one if none is given).
    pub fn server_url(&self) -> &str {
        self.server.as_deref().unwrap_or(DEFAULT_SERVER)
    }
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    Text,
    /// JSON, as returned by the server.
    Json,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and list projects.
    Projects {
        /// The project command.
        #[command(subcommand)]
        command: ProjectsCommand,
    },
    /// Create, list, pause, resume and archive the environments of a project.
    #[command(visible_alias = "envs")]
    Environments {
        /// The environment command.
        #[command(subcommand)]
        command: EnvironmentsCommand,
    },
    /// Answer or dismiss the inputs executions ask for (`cf.Prompt`).
    Inputs {
        #[command(subcommand)]
        command: super::inputs::InputsCommand,
    },
    /// Start workflows on cron schedules.
    Schedules {
        #[command(subcommand)]
        command: SchedulesCommand,
    },
    /// Limit how many executions of a target run at once in an environment.
    Limits {
        #[command(subcommand)]
        command: LimitsCommand,
    },
    /// Register and inspect the workflow and task definitions of an environment.
    Manifests {
        /// The manifest command.
        #[command(subcommand)]
        command: ManifestsCommand,
    },
    /// Submit a workflow run and (by default) wait for its result.
    Submit(SubmitArgs),
    /// List, inspect, watch, re-run and cancel runs.
    Runs {
        /// The run command.
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Show the logs of a run.
    Logs(LogsArgs),
    /// Inspect and download assets (files persisted by executions).
    Assets {
        /// The asset command.
        #[command(subcommand)]
        command: AssetsCommand,
    },
    /// Show what waits in the environment's queue and why (paused, delayed, no agent,
    /// requires not provided, concurrency limit, agents busy).
    Queue {
        /// The most executions shown (oldest first; at most 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// List the sessions of connected agents.
    Sessions {
        /// The session command.
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// Create, list and revoke the access tokens of a project (needs an admin token).
    Tokens {
        /// The token command.
        #[command(subcommand)]
        command: TokensCommand,
    },
}

/// `coflux runs list` filters and paging.
#[derive(Debug, Clone, Default, Args)]
pub struct RunsListArgs {
    /// Only runs with this status: `queued`, `running`, `value`, `error`, `cancelled`,
    /// `abandoned`, `crashed`, `timeout`, …
    #[arg(long)]
    pub status: Option<String>,
    /// Only runs of this workflow (`MODULE/TARGET`).
    #[arg(long)]
    pub workflow: Option<String>,
    /// Only runs submitted since: a duration ago (`90s`, `15m`, `2h`, `7d`), an RFC 3339
    /// time or Unix milliseconds.
    #[arg(long)]
    pub since: Option<String>,
    /// Only runs submitted before: same forms as `--since`.
    #[arg(long)]
    pub until: Option<String>,
    /// How many runs per page (at most 1000).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Start after a page: the cursor printed below the previous page.
    #[arg(long, conflicts_with = "all")]
    pub cursor: Option<String>,
    /// Follow the cursor to the last page and list every matching run.
    #[arg(long)]
    pub all: bool,
}

/// `coflux tokens …` (needs a project).
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token; it is printed once and cannot be shown again.
    Create {
        /// What it may do: `agent` (connect agents, move blobs and assets), `user` (read,
        /// submit, re-run, cancel, manage environments) or `admin` (also manage tokens).
        #[arg(long, default_value = "user")]
        role: String,
        /// The environments it may act in, as a pattern with `*` (e.g. `dev-*`); default all.
        #[arg(long)]
        environments: Option<String>,
        /// Days until it expires; default never.
        #[arg(long)]
        expires: Option<u64>,
    },
    /// List the project's tokens (never their secrets).
    List,
    /// Revoke a token: it stops working at once.
    Revoke {
        /// Its id (as listed).
        id: String,
    },
}

/// `coflux sessions …` (needs a project).
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List the agents' sessions (of `--environment` if given): whether connected, capacity,
    /// running executions and the tags they provide.
    List,
}

/// `coflux projects …`
#[derive(Debug, Subcommand)]
pub enum ProjectsCommand {
    /// Create a project (creating an existing project does nothing).
    Create {
        /// The project's name: lower-case letters, digits, '_' and '-'.
        name: String,
    },
    /// List projects, oldest first.
    List,
}

/// `coflux environments …` (needs a project).
#[derive(Debug, Subcommand)]
pub enum EnvironmentsCommand {
    /// Create an environment, optionally inheriting cached results from a parent.
    Create {
        /// The environment's name (segments of letters, digits, '_' and '-' separated by '/').
        name: String,
        /// The environment to inherit from.
        #[arg(long)]
        parent: Option<String>,
    },
    /// List environments, including archived ones.
    List,
    /// Re-base an environment: inherit from another parent (refused if that would make a
    /// cycle), or from none.
    Update {
        /// The environment.
        name: String,
        /// The new parent.
        #[arg(
            long,
            conflicts_with = "no_parent",
            required_unless_present = "no_parent"
        )]
        parent: Option<String>,
        /// Leave it without a parent.
        #[arg(long)]
        no_parent: bool,
    },
    /// Pause an environment: nothing is assigned until it is resumed.
    Pause {
        /// The environment.
        name: String,
    },
    /// Resume a paused environment.
    Resume {
        /// The environment.
        name: String,
    },
    /// Archive an environment (its pending work is cancelled).
    Archive {
        /// The environment.
        name: String,
    },
}

/// `coflux manifests …` (needs a project and an environment).
#[derive(Debug, Subcommand)]
pub enum ManifestsCommand {
    /// Register target definitions from a JSON file: an array of TargetDefinition objects, or
    /// `{"targets":[…]}`.
    Register {
        /// The JSON file.
        file: PathBuf,
    },
    /// List the registered workflows and tasks.
    Inspect,
    /// Archive a module: its workflows and tasks are hidden until they are registered again.
    Archive {
        /// The module.
        module: String,
    },
    /// Print what an agent would register for these modules, without a server (`-o json`
    /// gives a file for `manifests register`).
    Discover {
        /// The modules (Python modules or packages).
        #[arg(required = true)]
        modules: Vec<String>,
        /// The executor command, e.g. `'.venv/bin/python -m coflux'` (default: detected from
        /// the directory, as the agent does).
        #[arg(long, env = "COFLUX_ADAPTER")]
        adapter: Option<String>,
        /// The repository's directory.
        #[arg(long, default_value = ".")]
        directory: PathBuf,
    },
}

/// `coflux submit MODULE/TARGET [JSON_ARG…]` (needs a project and an environment).
/// `coflux schedules ...`.
#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// Start MODULE/TARGET in the environment at every tick of CRON (UTC): five fields
    /// (minute hour day-of-month month day-of-week), or six with seconds first, or a nickname
    /// such as @hourly. Ticks that pass while the server is down are not run (except the
    /// latest, if under 30 s late); they are counted as missed.
    Create {
        /// `MODULE/TARGET`.
        target: String,
        /// The cron expression, e.g. "0 3 * * *" (03:00 UTC every day).
        cron: String,
        /// Arguments of every run, each as JSON.
        #[arg(allow_negative_numbers = true)]
        arguments: Vec<String>,
    },
    /// List the project's schedules, with their next tick and missed ticks.
    List,
    /// Remove a schedule.
    Delete {
        /// Its id.
        id: u32,
    },
}

/// `coflux limits ...`.
#[derive(Debug, Subcommand)]
pub enum LimitsCommand {
    /// List the environment's concurrency limits.
    List,
    /// At most MAX executions of MODULE/TARGET run at once in the environment (across all its
    /// agents; executions waiting for their children do not count).
    Set {
        /// `MODULE/TARGET`.
        target: String,
        /// The limit (at least 1).
        #[arg(value_parser = clap::value_parser!(u32).range(1..))]
        max: u32,
    },
    /// Lift the limit of MODULE/TARGET.
    Clear {
        /// `MODULE/TARGET`.
        target: String,
    },
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The workflow, as `module/target` (e.g. `quickstart/hello`).
    pub target: String,
    /// Arguments, each a JSON value (e.g. `'"world"'`, `5`, `'{"a":1}'`).
    #[arg(allow_negative_numbers = true)]
    pub arguments: Vec<String>,
    /// Print the run id and return without waiting for the result.
    #[arg(long)]
    pub no_wait: bool,
    /// Submissions with the same key in the same environment (within the server's retention,
    /// 24 hours by default) return the same run instead of starting another.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// Submit even if no agent has registered the workflow in the environment (the run waits
    /// for one); otherwise such a submission is refused.
    #[arg(long)]
    pub allow_unregistered: bool,
    /// Replace the workflow's requires for this run with these tags, as `key:value`
    /// (repeatable; `key:a,b` for several values).
    #[arg(long, value_name = "KEY:VALUE", conflicts_with = "no_requires")]
    pub requires: Vec<String>,
    /// Run without the workflow's requires.
    #[arg(long)]
    pub no_requires: bool,
    /// Memoise the run's steps (whatever the workflow says).
    #[arg(long, conflicts_with = "no_memo")]
    pub memo: bool,
    /// Do not memoise the run's steps.
    #[arg(long)]
    pub no_memo: bool,
    /// Wait this long before the first attempt (`30s`, `5m`, `2h`; `0s` for none), instead of
    /// the workflow's delay.
    #[arg(long, value_name = "DURATION")]
    pub delay: Option<String>,
    /// Retry a failure at most N times, without backoff (0: no retries), instead of the
    /// workflow's retries.
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
}

/// `coflux runs …` (needs a project).
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first (of the environment given with `--environment`, else all).
    List(RunsListArgs),
    /// Show a run as a tree of steps with their attempts, states, timings and results.
    Inspect {
        /// The run id (e.g. `R1`).
        run: String,
        /// Draw every step of long fan-outs (by default, 10 or more calls of one target
        /// from one parent are one line with their counts).
        #[arg(long)]
        all: bool,
    },
    /// Redraw a run's tree until the run finishes.
    Watch {
        /// The run id.
        run: String,
        /// Draw every step of long fan-outs.
        #[arg(long)]
        all: bool,
        /// Milliseconds between refreshes.
        #[arg(long, default_value_t = 500)]
        interval_ms: u64,
    },
    /// Print a run's result as seen from `--environment` (default: the run's own), waiting for
    /// it unless `--no-wait`. `RUN:STEP` gives a step's result, `RUN:STEP:ATTEMPT` exactly that
    /// attempt's.
    Result {
        /// `RUN`, `RUN:STEP` or `RUN:STEP:ATTEMPT` (e.g. `R1`, `R1:2`, `R1:1:2`).
        run: String,
        /// Report `pending` instead of waiting.
        #[arg(long)]
        no_wait: bool,
    },
    /// Re-run a step (a new attempt), in `--environment` or the step's own environment.
    Rerun {
        /// The step id (e.g. `R1:1`).
        step: String,
    },
    /// Cancel an execution and its descendants.
    Cancel {
        /// The execution id (e.g. `R1:1:1`).
        execution: String,
    },
    /// Delete a finished run with its steps, executions, logs, metrics, checkpoints, streams
    /// and inputs. Refused while it runs, or while another run links to its results (a cache
    /// hit).
    Delete {
        /// The run id (e.g. `R1`).
        run: String,
    },
}

/// `coflux logs RUN [EXECUTION] [--follow] [--from TIME]` (needs a project).
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The run id.
    pub run: String,
    /// Only this execution (`R1:2:1`, or `2:1` within the run) or step (`R1:2`, or `2`: all
    /// its attempts).
    pub execution: Option<String>,
    /// Keep printing new messages until the run finishes (or Ctrl-C).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only messages logged since: a duration ago (`90s`, `15m`, `2h`), an RFC 3339 time or
    /// Unix milliseconds.
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
}

/// `coflux assets …` (needs a project).
#[derive(Debug, Subcommand)]
pub enum AssetsCommand {
    /// List an asset's files: path, size, type and blob.
    Inspect {
        /// The asset id (e.g. `A3f9c2d41b7e8a05c`).
        asset: String,
        /// Only files whose path matches this glob (`*` and `?` within a directory, `**`
        /// across directories, e.g. `data/*.csv`, `**/*.md`).
        #[arg(long = "match", value_name = "GLOB")]
        pattern: Option<String>,
    },
    /// Download an asset's files (all, or those under the given paths) into a directory.
    Download {
        /// The asset id.
        asset: String,
        /// The directory to write into (created if missing).
        #[arg(long, default_value = ".")]
        to: PathBuf,
        /// Entries or directories of the asset to download (default: everything).
        paths: Vec<String>,
        /// Only files whose path matches this glob (as for `inspect`).
        #[arg(long = "match", value_name = "GLOB")]
        pattern: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn negative_numbers_are_arguments_and_flags_still_work() {
        let cli = Cli::try_parse_from([
            "coflux",
            "submit",
            "m/t",
            "-5",
            "{}",
            "--no-wait",
            "-o",
            "json",
        ])
        .unwrap();
        let Command::Submit(args) = cli.command else {
            panic!("not submit")
        };
        assert_eq!(args.arguments, ["-5", "{}"]);
        assert!(args.no_wait);
        assert_eq!(cli.global.output, OutputFormat::Json);
    }
}
