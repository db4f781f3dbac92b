//! The embedded orchestrator: submissions of workflows that no in-process worker serves (and no
//! manifest registers) are refused unless allowed, and a run's result follows the environment
//! it is seen from.

use coflux_core::sdk::{Failure, Repository, Target, current_execution, workflow};
use coflux_core::{Coflux, SubmitOptions};

/// Tells which attempt it is.
#[workflow]
async fn which() -> Result<String, Failure> {
    let attempt = current_execution().map_or(0, |e| e.attempt);
    Ok(format!("attempt {attempt}"))
}

async fn open(dir: &tempfile::TempDir) -> (Coflux, coflux_core::Project) {
    let coflux = Coflux::open(dir.path()).await.unwrap();
    let project = coflux.project("test").await.unwrap();
    project
        .create_environment("production", None)
        .await
        .unwrap();
    project
        .create_environment("child", Some("production"))
        .await
        .unwrap();
    (coflux, project)
}

#[actix_rt::test]
async fn workflows_served_in_process_or_registered_are_submitted_others_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_coflux, project) = open(&dir).await;
    let err = project
        .submit("production", &which, ())
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), "workflow_not_found");
    assert!(
        err.to_string().contains("environment 'production'"),
        "{err}"
    );

    let worker = project
        .serve("production", Repository::new().with(which))
        .await
        .unwrap();
    let run = project.submit("production", &which, ()).await.unwrap();
    assert_eq!(run.result::<String>().await.unwrap(), "attempt 1");
    // Per environment: the child has no worker of its own.
    let err = project.submit("child", &which, ()).await.err().unwrap();
    assert_eq!(err.code(), "workflow_not_found");
    let allowed = SubmitOptions {
        allow_unregistered: true,
        ..Default::default()
    };
    let definition = which.definition();
    let queued = project
        .submit_with("child", definition.target.clone(), vec![], allowed)
        .await
        .unwrap();
    let view = queued.inspect().await.unwrap();
    assert!(view.steps[0].executions[0].result.is_none(), "queued");

    // Registered in a manifest, it is accepted with no worker connected.
    worker.stop();
    assert_eq!(
        project
            .submit("production", &which, ())
            .await
            .err()
            .unwrap()
            .code(),
        "workflow_not_found"
    );
    project
        .register_manifests("production", vec![definition])
        .await
        .unwrap();
    project.submit("production", &which, ()).await.unwrap();
}

#[actix_rt::test]
async fn a_run_result_follows_the_environment_it_is_seen_from() {
    let dir = tempfile::tempdir().unwrap();
    let (_coflux, project) = open(&dir).await;
    for env in ["production", "child"] {
        project
            .serve(env, Repository::new().with(which))
            .await
            .unwrap();
    }
    let run = project.submit("production", &which, ()).await.unwrap();
    assert_eq!(run.result::<String>().await.unwrap(), "attempt 1");
    let rerun = project
        .rerun_step(run.execution.step, Some("child"))
        .await
        .unwrap();
    let text = |r| match r {
        coflux_core::model::ExecutionResult::Value { value } => {
            coflux_core::sdk::decode_value::<String>(value).unwrap()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(
        text(project.execution_result(rerun).await.unwrap()),
        "attempt 2"
    );
    assert_eq!(text(run.raw_result().await.unwrap()), "attempt 1");
    assert_eq!(
        text(run.raw_result_in(Some("production")).await.unwrap()),
        "attempt 1"
    );
    assert_eq!(
        text(run.raw_result_in(Some("child")).await.unwrap()),
        "attempt 2"
    );
    let step = run.execution.step;
    assert_eq!(
        text(project.step_result(step, Some(2), None).await.unwrap()),
        "attempt 2"
    );
}

/// Manifests are part of the project's state: after a restart a registered workflow is still
/// accepted with no worker connected, and an archived module's workflows are still refused.
#[test]
fn registrations_and_archives_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let definition = which.definition();
    let mut other = definition.clone();
    other.target.module = "archived".into();
    actix_rt::System::new().block_on(async {
        let (coflux, project) = open(&dir).await;
        project
            .register_manifests("production", vec![definition.clone(), other.clone()])
            .await
            .unwrap();
        project
            .archive_module("production", "archived")
            .await
            .unwrap();
        coflux.shutdown();
    });
    actix_rt::System::new().block_on(async {
        let coflux = Coflux::open(dir.path()).await.unwrap();
        let project = coflux.existing_project("test").await.unwrap();
        project.submit("production", &which, ()).await.unwrap();
        let refused = project
            .submit_target("production", other.target.clone(), vec![], other.options)
            .await
            .err()
            .unwrap();
        assert_eq!(refused.code(), "workflow_not_found");
    });
}
