//! [`EnvironmentCore::queue`]: what waits in an environment's queue, and why.

use crate::model::{EnvironmentState, QueuedExecution, WaitReason};
use crate::orchestration::messages::Ticket;

use super::EnvironmentCore;

impl EnvironmentCore {
    /// The waiting executions, oldest first (at most `limit`), and how many wait in all.
    pub(crate) fn queue(&self, limit: usize) -> (Vec<QueuedExecution>, usize) {
        let ready = self.ready.iter().map(|t| (t, self.ready_reason(t)));
        let delayed = self
            .delayed
            .iter()
            .map(|((until, _), t)| (t, WaitReason::Delayed { until: *until }));
        let mut all: Vec<(&Ticket, WaitReason)> = ready.chain(delayed).collect();
        let total = all.len();
        all.sort_by_key(|(t, _)| (t.created_at, t.execution));
        let paused = self.state == EnvironmentState::Paused;
        let listed = all
            .into_iter()
            .take(limit)
            .map(|(ticket, reason)| QueuedExecution {
                execution: ticket.execution,
                target: ticket.target.clone(),
                created_at: ticket.created_at,
                reason: match reason {
                    WaitReason::Delayed { .. } => reason,
                    _ if paused => WaitReason::Paused,
                    _ => reason,
                },
            })
            .collect();
        (listed, total)
    }

    /// Why a ready ticket is not assigned: the first obstacle, from the workers' side.
    fn ready_reason(&self, ticket: &Ticket) -> WaitReason {
        let hosting: Vec<_> = self
            .workers
            .values()
            .filter(|w| w.targets.contains(&ticket.target))
            .collect();
        if hosting.is_empty() {
            return WaitReason::NoWorker;
        }
        if !hosting.iter().any(|w| w.fits(ticket)) {
            return WaitReason::RequiresNotProvided;
        }
        if let Some(max) = self.limits.get(&ticket.target)
            && !self.under_limit(&ticket.target)
        {
            return WaitReason::ConcurrencyLimit { max: *max };
        }
        WaitReason::WorkersBusy
    }
}
