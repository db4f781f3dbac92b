//! A workflow's submission, decided in the one [`ProjectMsg::StartRun`] message: the
//! environment, the registered manifests (held here), the options, the idempotency key and the
//! registration check, then the run.

use std::collections::BTreeMap;

use super::ProjectCore;
use crate::model::{
    EnvironmentId, Millis, RunId, StepOptions, TargetDefinition, TargetKind, TargetRef, Value,
};
use crate::orchestration::error::OrchestrationError;
use crate::orchestration::messages::{
    Envelope, Outbox, ProjectMsg, Reply, ReplyTo, RunMsg, RunOptions, Submission,
};
use crate::orchestration::registration::check_registered;

/// The definitions registered by manifests, by environment and target.
pub(super) type Manifests =
    std::collections::HashMap<EnvironmentId, BTreeMap<TargetRef, TargetDefinition>>;

/// The longest idempotency key accepted.
const MAX_KEY_LEN: usize = 256;

/// Refuses an empty or overlong idempotency key, saying why.
pub fn check_idempotency_key(key: Option<&str>) -> Result<(), String> {
    match key {
        Some(key) if key.is_empty() || key.len() > MAX_KEY_LEN => Err(format!(
            "an idempotency key must have 1 to {MAX_KEY_LEN} characters"
        )),
        _ => Ok(()),
    }
}

/// A refused idempotency key, as the API has always named it.
fn invalid_key(reason: String) -> OrchestrationError {
    OrchestrationError::InvalidInput(format!("invalid input: {reason}"))
}

impl ProjectCore {
    /// The definitions registered for `env`, by module and name.
    pub fn manifests(&self, env: EnvironmentId) -> Vec<TargetDefinition> {
        self.manifests
            .get(&env)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Records definitions registered for `env` (replacing those of the same targets).
    pub(super) fn register(&mut self, env: EnvironmentId, definitions: &[TargetDefinition]) {
        let registered = self.manifests.entry(env).or_default();
        for definition in definitions {
            registered.insert(definition.target.clone(), definition.clone());
        }
    }

    /// Forgets the definitions of `module` registered for `env`.
    pub(super) fn archive(&mut self, env: EnvironmentId, module: &str) {
        if let Some(registered) = self.manifests.get_mut(&env) {
            registered.retain(|target, _| target.module != module);
        }
    }

    /// Handles a [`ProjectMsg::StartRun`]: refuses it (replying at once) or starts (or finds)
    /// its run.
    pub(super) fn submit(&mut self, msg: ProjectMsg, now: Millis, out: &mut Outbox) {
        let ProjectMsg::StartRun {
            environment,
            target,
            arguments,
            submission,
            reply,
        } = msg
        else {
            unreachable!("routed by handle")
        };
        match self.decide(&environment, &target, &submission) {
            Ok((env, options)) => {
                let key = submission.idempotency_key;
                self.start(env, target, arguments, options, key, reply, now, out)
            }
            Err(e) => out.reply(reply, Reply::RunStarted(Err(e))),
        }
    }

    /// The submission's environment and options, or why it is refused. The checks come in
    /// the order the API has always made them: given options check the key before the
    /// environment; registered options resolve the environment and the workflow's definition
    /// first.
    fn decide(
        &self,
        environment: &crate::model::EnvironmentName,
        target: &TargetRef,
        submission: &Submission,
    ) -> Result<(EnvironmentId, StepOptions), OrchestrationError> {
        let key = submission.idempotency_key.as_deref();
        let (env, options) = match &submission.options {
            RunOptions::Given(options) => {
                check_idempotency_key(key).map_err(invalid_key)?;
                (self.resolve(environment)?.id, options.clone())
            }
            RunOptions::Registered(overrides) => {
                let env = self.resolve(environment)?.id;
                let registered = self.manifests.get(&env).and_then(|m| m.get(target));
                let mut options = match registered {
                    Some(d) if d.kind == TargetKind::Task => {
                        return Err(OrchestrationError::NotAWorkflow(target.to_string()));
                    }
                    Some(d) => d.options.clone(),
                    None => StepOptions::default(),
                };
                overrides
                    .apply(&mut options)
                    .map_err(OrchestrationError::InvalidInput)?;
                check_idempotency_key(key).map_err(invalid_key)?;
                (env, options)
            }
        };
        if !submission.allow_unregistered {
            let hosted = submission.hosted.get(&env).cloned().unwrap_or_default();
            check_registered(target, environment.as_str(), &hosted, &self.manifests(env))?;
        }
        Ok((env, options))
    }

    /// Starts a run in `env`, or answers with the run an unexpired idempotency key names.
    #[allow(clippy::too_many_arguments)]
    fn start(
        &mut self,
        env: EnvironmentId,
        target: TargetRef,
        arguments: Vec<Value>,
        options: StepOptions,
        idempotency_key: Option<String>,
        reply: ReplyTo,
        now: Millis,
        out: &mut Outbox,
    ) {
        if let Some(key) = &idempotency_key {
            let entry = self.keys.get(&(env, key.clone()));
            if let Some((run, at)) = entry
                && now - at < self.key_retention_ms
            {
                // Through the run, so the answer follows the run's own commit.
                return out.send(Envelope::Run(*run, RunMsg::Started { reply }));
            }
            self.keys
                .retain(|_, (_, at)| now - *at < self.key_retention_ms);
        }
        let run = RunId(self.next_run);
        self.next_run += 1;
        if let Some(key) = &idempotency_key {
            self.keys.insert((env, key.clone()), (run, now));
        }
        let msg = RunMsg::Create {
            environment: env,
            target,
            arguments,
            options,
            idempotency_key,
            spawned_by: None,
            call: None,
            reply,
            wait: None,
        };
        out.send(Envelope::Run(run, msg));
    }
}
