//! Environments: a `production` run, then a `development` child environment that reuses
//! production's cached results and re-runs one of production's steps with changed code.
//!
//! ```text
//! cargo run --release --example environments
//! ```
//!
//! `development` inherits from `production`: its cache lookups also see production's results
//! (never the other way round), and any step of a production run can be re-run in it. The
//! re-run shows up in development's view of the run; production's view is untouched.

use coflux_core::Coflux;
use coflux_core::model::ExecutionResult;
use coflux_core::sdk::{Failure, Repository, task, workflow};

/// Loads a dataset (expensive; cached for an hour).
#[task(cache(max_age_ms = 3_600_000))]
async fn load(name: String) -> Result<Vec<u64>, Failure> {
    actix_rt::time::sleep(std::time::Duration::from_millis(300)).await;
    Ok((1..=10).map(|i| i * name.len() as u64).collect())
}

/// Summarises a dataset: production's version sums it.
#[task]
async fn summarise(data: Vec<u64>) -> Result<String, Failure> {
    Ok(format!("sum = {}", data.iter().sum::<u64>()))
}

/// Summarises a dataset: the development version being worked on also reports the mean.
#[task(name = "summarise")]
async fn summarise_v2(data: Vec<u64>) -> Result<String, Failure> {
    let sum: u64 = data.iter().sum();
    Ok(format!(
        "sum = {sum}, mean = {:.1}",
        sum as f64 / data.len() as f64
    ))
}

/// Loads a dataset and summarises it.
#[workflow]
async fn report(name: String) -> Result<String, Failure> {
    let data = load.call(name).await?;
    Ok(summarise.call(data).await?)
}

#[actix_rt::main]
async fn main() -> anyhow::Result<()> {
    let data_dir = std::env::var("COFLUX_DATA_DIR").unwrap_or_else(|_| ".coflux".into());
    let coflux = Coflux::open(&data_dir).await?;
    let project = coflux.project("environments").await?;
    project.ensure_environment("production", None).await?;
    project
        .ensure_environment("development", Some("production"))
        .await?;

    // Production runs the released code.
    let production = project
        .serve(
            "production",
            Repository::new().with(report).with(load).with(summarise),
        )
        .await?;
    // Development runs the code being changed: the same targets, a new `summarise`.
    let development = project
        .serve(
            "development",
            Repository::new().with(report).with(load).with(summarise_v2),
        )
        .await?;

    let run = project.submit("production", &report, ("sales",)).await?;
    println!(
        "production: report(\"sales\") = {:?}",
        run.result::<String>().await?
    );
    print!("{}", run.inspect().await?);

    let dev_run = project.submit("development", &report, ("sales",)).await?;
    println!(
        "\ndevelopment: report(\"sales\") = {:?}",
        dev_run.result::<String>().await?
    );
    let view = dev_run.inspect().await?;
    print!("{view}");
    let reused = view.steps_named("load").any(|s| {
        s.executions
            .iter()
            .any(|e| matches!(e.result, Some(ExecutionResult::Cached { .. })))
    });
    println!(
        "(development {} production's cached load)",
        if reused { "reused" } else { "did not reuse" }
    );

    // Re-run production's `summarise` step in development, with the new code.
    let production_view = run.inspect().await?;
    let step = production_view
        .steps_named("summarise")
        .next()
        .expect("the run has a summarise step")
        .id;
    let rerun = project.rerun_step(step, Some("development")).await?;
    let result = project.execution_result(rerun).await?;
    if let ExecutionResult::Value { .. } = result {
        println!("\nre-ran step {step} in development as {rerun}");
    }
    println!("\nthe run as development sees it:");
    print!(
        "{}",
        project.inspect_run(run.run, Some("development")).await?
    );
    println!("\nthe run as production sees it (unchanged):");
    print!(
        "{}",
        project.inspect_run(run.run, Some("production")).await?
    );

    production.stop();
    development.stop();
    Ok(())
}
