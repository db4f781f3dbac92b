//! The whole system on one machine: a Coflux-rs server (embedded SQLite in `./.coflux-server`),
//! an agent hosting the Rust example repository, a submitted workflow and its result.
//!
//! ```text
//! cargo run --release --example local            # run it, print the result and the run
//! cargo run --release --example local -- --serve # then keep the server up for the CLI
//! ```
//!
//! This binary is also the repository's executor: the agent starts it again as
//! `local execute`, and it serves the executions it is given (the executor protocol).

use std::net::TcpListener;
use std::process::ExitCode;
use std::time::Duration;

use actix_web::{HttpServer, web};
use coflux_agent::executor::AdapterCommand;
use coflux_agent::runtime::{Agent, AgentConfig, declared};
use coflux_server::{AppState, ServerConfig, create_app};
use serde_json::{Value as Json, json};

const PROJECT: &str = "demo";
const ENVIRONMENT: &str = "development";

fn main() -> ExitCode {
    let mode = std::env::args().nth(1);
    if matches!(mode.as_deref(), Some("discover" | "execute")) {
        return coflux_core::sdk::executor::main(coflux_examples::repository());
    }
    let serve = std::env::args().any(|a| a == "--serve");
    match actix_rt::System::new().block_on(run(serve)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn port() -> u16 {
    let preferred = std::env::var("COFLUX_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(7777);
    match TcpListener::bind(("127.0.0.1", preferred)) {
        Ok(_) => preferred,
        Err(_) => TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(preferred),
    }
}

async fn run(serve: bool) -> anyhow::Result<()> {
    let data_dir = std::env::var("COFLUX_DATA_DIR").unwrap_or_else(|_| ".coflux-server".into());
    let mut config = ServerConfig::new(&data_dir);
    config.port = port();
    let url = format!("http://127.0.0.1:{}", config.port);

    // The server: the orchestrator first, then HTTP and the agent endpoint.
    let state = web::Data::new(AppState::open(&config).await?);
    let app_state = state.clone();
    let server = HttpServer::new(move || create_app(app_state.clone()))
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", config.port))?
        .run();
    let server_handle = server.handle();
    actix_rt::spawn(server);
    let project = state.coflux.project(PROJECT).await?;
    project.ensure_environment(ENVIRONMENT, None).await?;
    println!("server:  {url}  (data in {data_dir})");

    // The agent: this very binary is the Rust repository's executor.
    let exe = std::env::current_exe()?;
    let adapter = AdapterCommand::new([exe.display().to_string()]);
    let agent_config = AgentConfig {
        server: url.clone(),
        project: PROJECT.into(),
        environment: ENVIRONMENT.into(),
        concurrency: 16,
        provides: Default::default(),
        accepts: Default::default(),
        register: true,
        adapter: None,
        modules: Vec::new(),
        directory: std::env::current_dir()?,
        drain_timeout: Duration::from_secs(10),
        executor: Default::default(),
    };
    let definitions = coflux_agent::repository::load(&agent_config, &adapter).await?;
    println!(
        "agent:   hosting {} targets of examples.repo ({})",
        declared(&definitions).len(),
        exe.display()
    );
    let (stop_agent, agent_stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = actix_rt::spawn(async move {
        let agent = Agent::new(agent_config, adapter, &definitions);
        agent
            .run(async {
                let _ = agent_stopped.await;
            })
            .await
    });

    // Submit the example workflow over the HTTP API, as `coflux submit` does.
    let http = coflux_agent::net::client(Duration::from_secs(120));
    let runs = format!("{url}/api/projects/{PROJECT}/environments/{ENVIRONMENT}/runs");
    let submitted: Json = http
        .post(&runs)
        .send_json(
            &json!({"module": "examples.repo", "target": "sum_of_squares", "arguments": [10]}),
        )
        .await
        .map_err(|e| anyhow::anyhow!("submit: {e}"))?
        .json()
        .await?;
    let run = submitted["run_id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("submit failed: {submitted}"))?
        .to_string();
    println!("submit:  examples.repo/sum_of_squares(10) → run {run}");
    let result: Json = http
        .get(format!(
            "{url}/api/projects/{PROJECT}/runs/{run}/result?wait=60"
        ))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("result: {e}"))?
        .json()
        .await?;
    println!("result:  {}", result["value"]);

    let view = project.inspect_run(run.parse()?, None).await?;
    let squares = view.steps_named("square").count();
    let hits = view
        .steps_named("square")
        .filter(|s| {
            s.executions
                .first()
                .and_then(|e| e.result.as_ref())
                .is_some_and(|r| r.kind() == coflux_core::model::ResultKind::Cached)
        })
        .count();
    println!("\n{view}");
    println!("{hits} of {squares} squares were cache hits");
    if hits < squares {
        println!("(run it again: the squares are cached, across runs and restarts)");
    }

    let page = format!("{url}/projects/{PROJECT}/runs/{run}");
    if serve {
        println!("\nSee it in the web UI: {page}");
    } else {
        println!("\nIn the web UI (with `-- --serve`): {page}");
    }
    println!("\nLook at it with the CLI:");
    if serve {
        println!(
            "  cargo run --release --bin coflux -- --server {url} -p {PROJECT} runs inspect {run}"
        );
        println!(
            "  cargo run --release --bin coflux -- --server {url} -p {PROJECT} -e {ENVIRONMENT} submit examples.repo/sum_of_squares 20"
        );
        println!("\nServing on {url}; Ctrl-C to stop.");
        let _ = tokio::signal::ctrl_c().await;
    } else {
        println!(
            "  cargo run --release --example local -- --serve   (keeps this server up), then:"
        );
        println!(
            "  cargo run --release --bin coflux -- --server {url} -p {PROJECT} runs inspect {run}"
        );
    }
    let _ = stop_agent.send(());
    let _ = agent.await;
    server_handle.stop(true).await;
    Ok(())
}
