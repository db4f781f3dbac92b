//! Calls from running executions: child steps (with run-level memo and `requires`), memo
//! hits, replays after a suspension, and workflows started as spawned runs.

use super::*;

/// What an execution resumed after a suspension has replayed so far (see `RunCore::replay`).
#[derive(Debug, Default)]
pub(super) struct Replay {
    /// The predecessor's children by call (target and call key), in child order.
    previous: HashMap<(TargetRef, String), Vec<ExecutionId>>,
    /// How many of the execution's own steps and links are counted in `made`.
    own_seen: usize,
    links_seen: usize,
    /// The execution's children counted so far, and how many per call.
    seen: std::collections::HashSet<ExecutionId>,
    made: HashMap<(TargetRef, String), usize>,
}

impl RunCore {
    /// A workflow called from an execution starts a run of its own, linked to the caller.
    pub(super) fn spawn(
        &mut self,
        parent: ExecutionId,
        call: Option<u32>,
        request: SubmitRequest,
        reply: ReplyTo,
        wait: Option<ReplyTo>,
        out: &mut Outbox,
    ) {
        let attempt = match self.attempt(parent) {
            Some(a) if a.result.is_none() => a,
            found => {
                let error = match found {
                    None => OrchestrationError::ExecutionNotFound(parent.to_string()),
                    Some(_) => OrchestrationError::Invalid(format!(
                        "execution {parent} has already finished; it cannot submit children"
                    )),
                };
                if let Some(wait) = wait {
                    out.reply(wait, Reply::Result(Err(error.clone())));
                }
                return out.reply(reply, Reply::Submitted(Err(error)));
            }
        };
        out.send(Envelope::Project(ProjectMsg::SpawnRun {
            parent,
            call,
            environment: attempt.environment,
            target: request.target,
            arguments: request.arguments,
            options: request.options,
            reply,
            wait,
        }));
    }

    pub(super) fn submit(
        &mut self,
        parent: ExecutionId,
        request: SubmitRequest,
        now: Millis,
        out: &mut Outbox,
    ) -> Result<ExecutionId, OrchestrationError> {
        let parent_attempt = self
            .attempt(parent)
            .ok_or_else(|| OrchestrationError::ExecutionNotFound(parent.to_string()))?;
        if parent_attempt.result.is_some() {
            return Err(OrchestrationError::Invalid(format!(
                "execution {parent} has already finished; it cannot submit children"
            )));
        }
        let environment = parent_attempt.environment;
        let mut request = request;
        if request.options.memo.is_none() && self.memoises_children() {
            request.options.memo = Some(ParamSelection::All(true));
        }
        request.options.requires = self.effective_requires(request.options.requires);
        if let Some(child) = self.replay(parent, &request) {
            self.link(parent, child, out);
            return Ok(child);
        }
        if let Some(params) = &request.options.memo {
            let key = (
                environment,
                call_key(&request.target, params, &request.arguments),
            );
            if let Some(existing) = self.memo.get(&key).copied()
                && !matches!(self.resolve(existing), Resolution::Final(ref r) if !matches!(r, ExecutionResult::Value { .. }))
            {
                self.link(parent, existing, out);
                return Ok(existing);
            }
        }
        let SubmitRequest {
            target,
            kind,
            arguments,
            options,
        } = request;
        Ok(self.add_step(
            Some(parent),
            environment,
            target,
            kind,
            arguments,
            options,
            now,
            out,
        ))
    }

    pub(super) fn link(&mut self, parent: ExecutionId, child: ExecutionId, out: &mut Outbox) {
        self.links.entry(parent).or_default().push(child);
        out.write(Write::LinkChild { parent, child });
    }

    /// The children `parent` and its other callers made, in call order: its own steps and the
    /// executions linked to it.
    pub(super) fn children_of(&self, parent: ExecutionId) -> Vec<ExecutionId> {
        let mut children: Vec<ExecutionId> = self
            .own_children
            .get(&parent)
            .into_iter()
            .flatten()
            .map(|step| step.execution(1))
            .chain(self.links.get(&parent).into_iter().flatten().copied())
            .collect();
        children.sort_unstable();
        children.dedup();
        children
    }

    /// An execution resumed after its predecessor suspended re-runs its code from the top: the
    /// calls it repeats get the children its predecessor made (the k-th identical call the k-th
    /// child with the same target and arguments), so nothing is submitted twice.
    ///
    /// The predecessor's children are grouped by call once, and the resumed execution's own
    /// children are counted as they come (`Replay`), so a call costs the same in a wide
    /// fan-out as in a narrow one.
    pub(super) fn replay(
        &mut self,
        parent: ExecutionId,
        request: &SubmitRequest,
    ) -> Option<ExecutionId> {
        let previous = ExecutionId {
            step: parent.step,
            attempt: parent.attempt.checked_sub(1).filter(|a| *a > 0)?,
        };
        if !matches!(
            self.attempt(previous)?.result,
            Some(ExecutionResult::Suspended { .. })
        ) {
            return None;
        }
        let mut replay = match self.replays.remove(&parent) {
            Some(replay) => replay,
            None => {
                // The predecessor has finished: its children no longer change.
                let mut replay = Replay::default();
                for child in self.children_of(previous) {
                    if let Some(call) = self.call_of(child) {
                        replay.previous.entry(call).or_default().push(child);
                    }
                }
                replay
            }
        };
        // Count the children `parent` got since the last call (its lists only grow).
        let own: Vec<ExecutionId> = self
            .own_children
            .get(&parent)
            .map_or(&[][..], Vec::as_slice)[replay.own_seen..]
            .iter()
            .map(|step| step.execution(1))
            .collect();
        let linked =
            self.links.get(&parent).map_or(&[][..], Vec::as_slice)[replay.links_seen..].to_vec();
        replay.own_seen += own.len();
        replay.links_seen += linked.len();
        for child in own.into_iter().chain(linked) {
            if replay.seen.insert(child)
                && let Some(call) = self.call_of(child)
            {
                *replay.made.entry(call).or_default() += 1;
            }
        }
        let all = ParamSelection::All(true);
        let call = (
            request.target.clone(),
            call_key(&request.target, &all, &request.arguments),
        );
        let made = replay.made.get(&call).copied().unwrap_or(0);
        let child = replay
            .previous
            .get(&call)
            .and_then(|c| c.get(made))
            .copied();
        self.replays.insert(parent, replay);
        child
    }

    /// The target and the call key (on all arguments) of a step's first execution.
    fn call_of(&self, child: ExecutionId) -> Option<(TargetRef, String)> {
        let step = self.step(child.step)?;
        let all = ParamSelection::All(true);
        let key = call_key(&step.record.target, &all, &step.arguments);
        Some((step.record.target.clone(), key))
    }

    /// A step's `requires` merged over its run's workflow's: the step's values win per key, and
    /// a key the step gives an empty list is removed.
    pub(super) fn effective_requires(&self, own: Requires) -> Requires {
        let mut merged = self
            .steps
            .first()
            .map(|s| s.record.options.requires.clone())
            .unwrap_or_default();
        for (key, values) in own {
            if values.is_empty() {
                merged.remove(&key);
            } else {
                merged.insert(key, values);
            }
        }
        merged
    }

    /// Whether the run's workflow memoises: its calls without a memo option of their own are
    /// memoised on all their parameters.
    pub(super) fn memoises_children(&self) -> bool {
        self.steps
            .first()
            .and_then(|s| s.record.options.memo.as_ref())
            .is_some_and(|m| !matches!(m, ParamSelection::All(false)))
    }
}
