//! A submission is decided by the project state machine in one message: refused with the
//! API's errors (in their order) or started with the registered options.

use super::ProjectCore;
use crate::model::{
    Environment, EnvironmentId, EnvironmentName, EnvironmentState, OptionOverrides, StepOptions,
    TargetDefinition, TargetKind, TargetRef,
};
use crate::orchestration::error::OrchestrationError;
use crate::orchestration::messages::{
    Envelope, Outbox, ProjectMsg, Reply, RunMsg, RunOptions, Submission,
};
use crate::store::ProjectSnapshot;

const ENV: EnvironmentId = EnvironmentId(1);

fn definition(name: &str, kind: TargetKind, retries: u32) -> TargetDefinition {
    let options = StepOptions {
        retries: Some(crate::model::RetryPolicy::limit(retries)),
        ..StepOptions::default()
    };
    TargetDefinition {
        target: TargetRef::new("app", name),
        kind,
        parameters: Vec::new(),
        options,
        instruction: None,
    }
}

/// A project with environment `production`, restored with `manifests`.
fn project(manifests: Vec<TargetDefinition>) -> ProjectCore {
    let snapshot = ProjectSnapshot {
        environments: vec![Environment {
            id: ENV,
            name: EnvironmentName::new("production").unwrap(),
            parent: None,
            state: EnvironmentState::Active,
            created_at: 0,
        }],
        manifests: manifests.into_iter().map(|d| (ENV, d)).collect(),
        ..ProjectSnapshot::default()
    };
    ProjectCore::restore(&snapshot, &mut Outbox::default())
}

fn registered(key: Option<&str>) -> Submission {
    Submission {
        options: RunOptions::Registered(OptionOverrides::default()),
        idempotency_key: key.map(str::to_string),
        allow_unregistered: false,
        hosted: Default::default(),
    }
}

/// What the one `StartRun` message produced: the options of the run it created, or the
/// error it replied with.
fn submit(
    core: &mut ProjectCore,
    env: &str,
    name: &str,
    submission: Submission,
) -> Result<StepOptions, OrchestrationError> {
    let mut out = Outbox::default();
    let msg = ProjectMsg::StartRun {
        environment: EnvironmentName::new(env).unwrap(),
        target: TargetRef::new("app", name),
        arguments: Vec::new(),
        submission: Box::new(submission),
        reply: 7,
    };
    core.handle(msg, 1_000, &mut out);
    assert_eq!(out.messages.len(), 1, "one answer: {:?}", out.messages);
    match out.messages.pop().unwrap() {
        Envelope::Run(_, RunMsg::Create { options, .. }) => Ok(options),
        Envelope::Reply(7, Reply::RunStarted(Err(e))) => Err(e),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn an_unregistered_workflow_is_refused_by_the_project_with_the_closest_names() {
    let mut core = project(vec![definition("greet", TargetKind::Workflow, 2)]);
    match submit(&mut core, "production", "gret", registered(None)) {
        Err(OrchestrationError::WorkflowNotFound {
            environment,
            suggestions,
            ..
        }) => {
            assert_eq!(environment, "production");
            assert_eq!(suggestions, vec!["app/greet".to_string()]);
        }
        other => panic!("expected workflow_not_found, got {other:?}"),
    }
}

#[test]
fn a_registered_workflow_starts_with_its_registered_options_and_the_overrides() {
    let mut core = project(vec![definition("greet", TargetKind::Workflow, 2)]);
    let options = submit(&mut core, "production", "greet", registered(None)).unwrap();
    assert_eq!(options.retries, Some(crate::model::RetryPolicy::limit(2)));
    let mut overridden = registered(None);
    overridden.options = RunOptions::Registered(OptionOverrides {
        retries: Some(5),
        ..OptionOverrides::default()
    });
    let options = submit(&mut core, "production", "greet", overridden).unwrap();
    assert_eq!(options.retries, Some(crate::model::RetryPolicy::limit(5)));
}

#[test]
fn a_hosted_workflow_starts_without_a_manifest() {
    let mut core = project(Vec::new());
    let mut submission = registered(None);
    submission
        .hosted
        .insert(ENV, [TargetRef::new("app", "greet")].into());
    assert!(submit(&mut core, "production", "greet", submission).is_ok());
}

#[test]
fn registering_and_archiving_change_what_may_be_submitted() {
    let mut core = project(Vec::new());
    let env = || EnvironmentName::new("production").unwrap();
    let mut out = Outbox::default();
    let definitions = vec![definition("greet", TargetKind::Workflow, 1)];
    let msg = ProjectMsg::RegisterManifests {
        environment: env(),
        definitions,
        reply: 1,
    };
    core.handle(msg, 0, &mut out);
    assert!(submit(&mut core, "production", "greet", registered(None)).is_ok());
    let msg = ProjectMsg::ArchiveModule {
        environment: env(),
        module: "app".into(),
        reply: 2,
    };
    core.handle(msg, 0, &mut out);
    assert!(matches!(
        submit(&mut core, "production", "greet", registered(None)),
        Err(OrchestrationError::WorkflowNotFound { .. })
    ));
}

#[test]
fn refusals_come_in_the_api_order() {
    let mut core = project(vec![definition("job", TargetKind::Task, 0)]);
    let bad_key = "";
    // Registered options: the environment first, then the definition's kind, then the key.
    assert!(matches!(
        submit(&mut core, "staging", "job", registered(Some(bad_key))),
        Err(OrchestrationError::EnvironmentNotFound(_))
    ));
    let refused = submit(&mut core, "production", "job", registered(Some(bad_key)));
    assert_eq!(refused.unwrap_err().code(), "not_a_workflow");
    let refused = submit(&mut core, "production", "other", registered(Some(bad_key)));
    assert_eq!(refused.unwrap_err().code(), "invalid_input");
    // Given options: the key before the environment.
    let given = Submission {
        options: RunOptions::Given(StepOptions::default()),
        ..registered(Some(bad_key))
    };
    let refused = submit(&mut core, "staging", "job", given);
    assert_eq!(refused.unwrap_err().code(), "invalid_input");
    // Unregistered but allowed: it starts.
    let allowed = Submission {
        allow_unregistered: true,
        ..registered(None)
    };
    assert!(submit(&mut core, "production", "other", allowed).is_ok());
}
