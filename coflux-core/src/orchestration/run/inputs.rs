//! Inputs (`cf.Prompt`): questions an execution of the run asks a person. Stored before any
//! answer goes out; the callers waiting for an answer live only here (after a restart, the
//! waiting agent asks again).
//!
//! An input is deduplicated by its key within the run: asking again (a retried or resumed
//! attempt, or another step) with the same key gets the same input, answered or not.

use super::*;
use crate::model::{InputId, InputOp, InputRecord, InputState};

/// A run's inputs and the callers waiting for them.
#[derive(Debug, Default)]
pub(super) struct Inputs {
    /// By number - 1.
    records: Vec<InputRecord>,
    /// Callers waiting for an input to become final, by number.
    waiting: HashMap<u32, Vec<ReplyTo>>,
    /// Executions held until an input is final (their predecessor suspended waiting for it),
    /// by number. Rebuilt from the executions' dependencies when the run is loaded.
    held: HashMap<u32, Vec<ExecutionId>>,
}

impl Inputs {
    /// The stored inputs of a run being loaded.
    pub(super) fn load(mut records: Vec<InputRecord>) -> Self {
        records.sort_by_key(|r| r.id.number);
        Self {
            records,
            waiting: HashMap::new(),
            held: HashMap::new(),
        }
    }

    /// Whether no caller waits for an input (the run's actor may retire).
    pub(super) fn is_idle(&self) -> bool {
        self.waiting.is_empty()
    }

    fn get_mut(&mut self, id: InputId) -> Result<&mut InputRecord, OrchestrationError> {
        (id.number as usize)
            .checked_sub(1)
            .and_then(|i| self.records.get_mut(i))
            .ok_or_else(|| OrchestrationError::InputNotFound(id.to_string()))
    }
}

fn rejected(input: InputId, reason: impl Into<String>) -> OrchestrationError {
    OrchestrationError::InputRejected {
        input: input.to_string(),
        reason: reason.into(),
    }
}

impl RunCore {
    /// Holds `execution` until `input` is final; false when there is nothing to wait for (it
    /// is final already, or not an input of this run: the execution then waits for it in its
    /// process, as any `select` does).
    pub(super) fn hold_on_input(&mut self, execution: ExecutionId, input: InputId) -> bool {
        let pending = self.input_pending(input);
        if pending {
            self.inputs
                .held
                .entry(input.number)
                .or_default()
                .push(execution);
        }
        pending
    }

    /// Whether `input` is an input of this run that is not final yet.
    pub(super) fn input_pending(&self, input: InputId) -> bool {
        input.run == self.id
            && (input.number as usize)
                .checked_sub(1)
                .and_then(|i| self.inputs.records.get(i))
                .is_some_and(|r| !r.state.is_final())
    }

    /// Handles an input operation; the answer goes to `reply` (now, or once the input is
    /// final for a wait).
    pub(super) fn input_op(&mut self, op: InputOp, reply: ReplyTo, now: Millis, out: &mut Outbox) {
        let answer = match op {
            InputOp::Submit { execution, spec } => {
                if self.attempt(execution).is_none() {
                    Err(OrchestrationError::ExecutionNotFound(execution.to_string()))
                } else if let Some(found) =
                    self.inputs.records.iter().find(|r| r.spec.key == spec.key)
                {
                    Ok(found.clone())
                } else {
                    let number = u32::try_from(self.inputs.records.len() + 1).unwrap_or(u32::MAX);
                    let record = InputRecord {
                        id: InputId {
                            run: self.id,
                            number,
                        },
                        execution,
                        spec,
                        created_at: now,
                        state: InputState::Pending,
                    };
                    out.write(Write::PutInput(Box::new(record.clone())));
                    self.inputs.records.push(record.clone());
                    Ok(record)
                }
            }
            InputOp::Get { input } => self.inputs.get_mut(input).map(|r| r.clone()),
            InputOp::Wait { input } => match self.inputs.get_mut(input) {
                Ok(record) if record.state.is_final() => Ok(record.clone()),
                Ok(_) => {
                    self.inputs
                        .waiting
                        .entry(input.number)
                        .or_default()
                        .push(reply);
                    return;
                }
                Err(e) => Err(e),
            },
            InputOp::Respond { input, value } => self.resolve_input(input, now, out, |record| {
                if let Some(schema) = &record.spec.schema {
                    crate::model::input::check_against_schema(schema, &value).map_err(
                        |reason| OrchestrationError::Invalid(format!("input {input}: {reason}")),
                    )?;
                }
                Ok(Some(InputState::Responded { value, at: now }))
            }),
            InputOp::Dismiss { input } => self.resolve_input(input, now, out, |_| {
                Ok(Some(InputState::Dismissed { at: now }))
            }),
            InputOp::Cancel { input } => self.resolve_input(input, now, out, |record| {
                // Cancelling a final input leaves it as it is.
                Ok((!record.state.is_final()).then_some(InputState::Cancelled { at: now }))
            }),
        };
        out.reply(reply, Reply::Input(answer));
    }

    /// Cancels the pending inputs that `execution` or an earlier attempt of its step asked for
    /// (it was cancelled: no later attempt of its step will wait for them; an attempt that
    /// suspended waiting for one ended in this one).
    pub(super) fn cancel_inputs_of(
        &mut self,
        execution: ExecutionId,
        now: Millis,
        out: &mut Outbox,
    ) {
        let pending: Vec<InputId> = self
            .inputs
            .records
            .iter()
            .filter(|r| {
                r.execution.step == execution.step
                    && r.execution.attempt <= execution.attempt
                    && !r.state.is_final()
            })
            .map(|r| r.id)
            .collect();
        for input in pending {
            let cancelled = self.resolve_input(input, now, out, |_| {
                Ok(Some(InputState::Cancelled { at: now }))
            });
            if let Err(error) = cancelled {
                tracing::warn!(%input, %error, "pending input not cancelled");
            }
        }
    }

    /// Moves a pending input to the state `decide` gives (none: unchanged), stores it and
    /// answers its waiters.
    fn resolve_input(
        &mut self,
        input: InputId,
        _now: Millis,
        out: &mut Outbox,
        decide: impl FnOnce(&InputRecord) -> Result<Option<InputState>, OrchestrationError>,
    ) -> Result<InputRecord, OrchestrationError> {
        let record = self.inputs.get_mut(input)?;
        let Some(state) = decide(record)? else {
            return Ok(record.clone());
        };
        if record.state.is_final() {
            return Err(rejected(input, "it has already been answered or dismissed"));
        }
        record.state = state;
        let record = record.clone();
        out.write(Write::PutInput(Box::new(record.clone())));
        for waiter in self
            .inputs
            .waiting
            .remove(&input.number)
            .unwrap_or_default()
        {
            out.reply(waiter, Reply::Input(Ok(record.clone())));
        }
        // Successors of executions that suspended waiting for it may run now (they read the
        // answer, or get `InputDismissed`).
        for held in self.inputs.held.remove(&input.number).unwrap_or_default() {
            self.unhold(held, out);
        }
        Ok(record)
    }
}
