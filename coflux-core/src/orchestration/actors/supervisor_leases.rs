//! A cluster node's side of project leases: taking a lease when a project is loaded, and a
//! round every fifth of the lease duration that beats the node's heartbeat, renews the leases
//! of its loaded projects, unloads the projects whose lease is lost, and takes over projects
//! whose owner stopped renewing (those rendezvous hashing gives to this node among the live
//! ones, or any project whose lease expired more than half a lease ago; none for a lease after
//! the node's own connection to PostgreSQL came back, see [`Leases::takeovers_paused`]).

use actix::{ActorFutureExt, AsyncContext, Context, WrapFuture};

use super::{OpenProject, OpenProjectError, Supervisor};
use crate::model::ProjectName;
use crate::store::StoreError;
use crate::store::postgres::lease::{Acquired, LeaseRow, Leases, NodeRow, preferred_node};

/// The pause before a failed lease round is tried again.
const RETRY_ROUND: std::time::Duration = std::time::Duration::from_millis(200);

/// Takes the lease of `name` for this node; its epoch.
pub(super) fn acquire(leases: &Leases, name: &ProjectName) -> Result<i64, OpenProjectError> {
    match crate::store::postgres::off_runtime(|| leases.acquire(name.as_str()))? {
        Acquired::Owned(epoch) => {
            tracing::info!(project = %name, epoch, "project lease taken");
            Ok(epoch)
        }
        Acquired::Elsewhere { node } => Err(OpenProjectError::Elsewhere(node)),
    }
}

/// What one lease round read.
struct Round {
    /// The projects loaded here when the round started (project, epoch).
    loaded: Vec<(String, i64)>,
    /// Those whose lease this node still holds.
    held: Vec<(String, i64)>,
    nodes: Vec<NodeRow>,
    leases: Vec<LeaseRow>,
    /// The database's clock (ms).
    now: i64,
}

fn read_round(
    leases: &Leases,
    blobs: &str,
    loaded: Vec<(String, i64)>,
) -> Result<Round, StoreError> {
    leases.heartbeat(blobs)?;
    let held = leases.renew(&loaded)?;
    let nodes = leases.nodes()?;
    let all = leases.leases()?;
    let now = leases.now_ms()?;
    Ok(Round {
        loaded,
        held,
        nodes,
        leases: all,
        now,
    })
}

impl Supervisor {
    /// Starts a lease round (unless one is under way).
    pub(super) fn lease_round(&mut self, ctx: &mut Context<Self>) {
        let (Some(leases), Some(cluster)) = (self.leases.clone(), self.config.cluster.as_ref())
        else {
            return;
        };
        if self.lease_round {
            return;
        }
        self.lease_round = true;
        let blobs = cluster.blobs.clone();
        let loaded: Vec<(String, i64)> = self
            .projects
            .iter()
            .filter_map(|(name, running)| Some((name.to_string(), running.epoch?)))
            .collect();
        let work = actix_rt::task::spawn_blocking(move || read_round(&leases, &blobs, loaded));
        ctx.spawn(work.into_actor(self).map(|result, this, ctx| {
            this.lease_round = false;
            let error = match result {
                Ok(Ok(round)) => return this.after_round(&round, ctx),
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            tracing::warn!(%error, "lease round failed");
            // PostgreSQL restarting, say: try again soon rather than a fifth of the lease
            // later, so that a few failed rounds in a row do not let the lease expire.
            ctx.run_later(RETRY_ROUND, |this, ctx| this.lease_round(ctx));
        }));
    }

    fn after_round(&mut self, round: &Round, ctx: &mut Context<Self>) {
        let Some(leases) = self.leases.clone() else {
            return;
        };
        // Projects whose lease is lost (taken by another node, or released) stop here at once;
        // those loaded since the round started are judged by the next one.
        let lost: Vec<ProjectName> = self
            .projects
            .iter()
            .filter(|(name, running)| {
                let judged =
                    |(p, e): &(String, i64)| p == name.as_str() && running.epoch == Some(*e);
                running.handle.router.is_fenced()
                    || (round.loaded.iter().any(judged) && !round.held.iter().any(judged))
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in lost {
            if let Some(running) = self.projects.remove(&name) {
                tracing::warn!(project = %name, "project lease lost; stopping the project on this node");
                self.unload(name, running, "lease lost", ctx);
            }
        }
        // Projects whose owner stopped renewing: taken over by the node rendezvous hashing
        // picks among the live ones, or by any node once overdue by half a lease.
        let me = leases.node();
        let mut live: Vec<String> = round
            .nodes
            .iter()
            .filter(|n| n.live)
            .map(|n| n.id.clone())
            .collect();
        if !live.iter().any(|n| n == me) {
            live.push(me.to_owned());
        }
        let half = i64::try_from(leases.duration().as_millis() / 2).unwrap_or(i64::MAX);
        let paused = leases.takeovers_paused();
        for lease in round.leases.iter().filter(|l| l.expired) {
            // Back from a lost connection: the owner may be replaying what PostgreSQL lost.
            if paused && lease.node != me {
                continue;
            }
            let Ok(name) = ProjectName::new(&lease.project) else {
                continue;
            };
            if self.projects.contains_key(&name) || self.closing.contains_key(&name) {
                continue;
            }
            let mine = preferred_node(&live, &lease.project) == Some(me);
            if !mine && round.now - lease.expires_at < half {
                continue;
            }
            tracing::info!(project = %name, previous_owner = %lease.node, "taking over a project whose lease expired");
            match self.open(OpenProject {
                name: name.clone(),
                create: false,
            }) {
                Ok(_) => {}
                Err(OpenProjectError::Elsewhere(owner)) => {
                    tracing::debug!(project = %name, %owner, "another node took the project first");
                }
                Err(OpenProjectError::NotFound(_)) => {
                    tracing::info!(project = %name, "forgetting the expired lease of a project that does not exist");
                    if let Err(e) = leases.forget_expired(name.as_str()) {
                        tracing::warn!(project = %name, error = %e, "could not forget a lease");
                    }
                }
                Err(e) => {
                    tracing::warn!(project = %name, error = %e, "could not take over a project")
                }
            }
        }
    }
}
