//! The three actor types: each wraps one state machine and sends its outbox through the writer.
//! They reach their project's router through [`Link`] (the router names the concrete types).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorContext, AsyncContext, Context, Handler, Message};

use crate::model::now_millis;

use super::super::environment::EnvironmentCore;
use super::super::messages::{
    Envelope, EnvironmentMsg, Outbox, ProjectMsg, ReloadTarget, ReplyTo, RunMsg,
};
use super::super::project::ProjectCore;
use super::super::run::{RunCore, Waiters};
use super::link::Link;

/// A message for an actor's state machine.
#[derive(Debug)]
pub struct Deliver<M>(pub M);

impl<M: 'static> Message for Deliver<M> {
    type Result = ();
}

/// Sends an outbox: writes and messages through the writer, timers on this actor's context.
fn dispatch<A, L: Link>(router: &Arc<L>, out: Outbox, ctx: &mut Context<A>)
where
    A: Actor<Context = Context<A>>,
{
    let now = now_millis();
    for timer in out.timers {
        let router = Arc::clone(router);
        let delay = Duration::from_millis(u64::try_from(timer.at - now).unwrap_or(0));
        ctx.run_later(delay, move |_, _| router.deliver(timer.envelope));
    }
    // Messages between this project's actors go at once: anything they cause outside (a reply,
    // a command to a worker) goes through the same FIFO writer after this batch, so it is only
    // acted on once these writes are durable. Replies and worker commands of this batch wait
    // for its commit.
    // Sized exactly: the external part waits in the writer's queue until its commit, and a
    // fan-out queues one such batch per child (a grown Vec would hold room for four envelopes).
    let internal_count = out.messages.iter().filter(|e| e.is_internal()).count();
    let (internal, external) = if internal_count == out.messages.len() {
        // Delivered at once: the outbox's own list will do.
        (out.messages, Vec::new())
    } else if internal_count == 0 {
        let mut external = out.messages;
        external.shrink_to_fit();
        (Vec::new(), external)
    } else {
        let mut internal = Vec::with_capacity(internal_count);
        let mut external = Vec::with_capacity(out.messages.len() - internal_count);
        for envelope in out.messages {
            if envelope.is_internal() {
                internal.push(envelope);
            } else {
                external.push(envelope);
            }
        }
        (internal, external)
    };
    if !internal.is_empty() {
        router.deliver_all(internal);
    }
    router.queue_commit(out.writes, external);
}

/// The tracing span a state machine handles a message in: it carries the project and the ids
/// the message is about (environment, run, step, execution).
trait Spanned<M> {
    fn span(&self, project: &str, msg: &M) -> tracing::Span;
}

impl Spanned<ProjectMsg> for ProjectCore {
    fn span(&self, project: &str, _: &ProjectMsg) -> tracing::Span {
        tracing::debug_span!("project", project = %project)
    }
}

impl Spanned<EnvironmentMsg> for EnvironmentCore {
    fn span(&self, project: &str, _: &EnvironmentMsg) -> tracing::Span {
        tracing::debug_span!("environment", project = %project, environment = %self.id())
    }
}

impl Spanned<RunMsg> for RunCore {
    fn span(&self, project: &str, msg: &RunMsg) -> tracing::Span {
        match msg.execution() {
            Some(e) => {
                tracing::debug_span!("run", project = %project, run = %self.id(), step = %e.step, execution = %e)
            }
            None => tracing::debug_span!("run", project = %project, run = %self.id()),
        }
    }
}

/// The callers waiting for a reply to a message (failed if handling it panics).
fn reply_ids<M: 'static>(msg: &M) -> Vec<ReplyTo> {
    match (msg as &dyn std::any::Any).downcast_ref::<RunMsg>() {
        Some(run) => run.reply_ids(),
        None => match (msg as &dyn std::any::Any).downcast_ref::<ProjectMsg>() {
            Some(ProjectMsg::CreateEnvironment { reply, .. })
            | Some(ProjectMsg::SetEnvironmentState { reply, .. })
            | Some(ProjectMsg::SetEnvironmentParent { reply, .. })
            | Some(ProjectMsg::ListEnvironments { reply })
            | Some(ProjectMsg::StartRun { reply, .. })
            | Some(ProjectMsg::RerunStep { reply, .. })
            | Some(ProjectMsg::ArchiveModule { reply, .. })
            | Some(ProjectMsg::SetConcurrencyLimit { reply, .. })
            | Some(ProjectMsg::CreateSchedule { reply, .. })
            | Some(ProjectMsg::DeleteSchedule { reply, .. })
            | Some(ProjectMsg::RegisterManifests { reply, .. })
            | Some(ProjectMsg::ForgetRuns { reply, .. }) => vec![*reply],
            Some(ProjectMsg::SpawnRun { reply, wait, .. }) => {
                std::iter::once(*reply).chain(*wait).collect()
            }
            _ => Vec::new(),
        },
    }
}

/// What stands in for a message whose handling panicked, beyond failing its callers: a cache
/// lookup goes on as a miss (the execution runs rather than waiting for an answer).
fn fallback<M: 'static>(msg: &M) -> Option<Envelope> {
    match (msg as &dyn std::any::Any).downcast_ref::<ProjectMsg>() {
        Some(ProjectMsg::CacheLookup(ticket)) => {
            let mut ticket = ticket.clone();
            ticket.cache = None;
            let environment = ticket.environment;
            Some(Envelope::Environment(
                environment,
                EnvironmentMsg::CacheMissed {
                    ticket,
                    key: String::new(),
                },
            ))
        }
        _ => None,
    }
}

macro_rules! host {
    ($(#[$doc:meta])* $name:ident, $core:ty, $msg:ty, $extra:ty) => {
        $(#[$doc])*
        pub struct $name<L: Link> {
            core: $core,
            router: Arc<L>,
            initial: Option<Outbox>,
            /// Host-specific state (for a run: whether it asked to be retired).
            extra: $extra,
        }

        impl<L: Link> $name<L> {
            /// Wraps a state machine; `initial` is dispatched when the actor starts.
            pub fn new(core: $core, router: Arc<L>, initial: Outbox) -> Self {
                Self { core, router, initial: Some(initial), extra: Default::default() }
            }
        }

        impl<L: Link> Actor for $name<L> {
            type Context = Context<Self>;

            fn started(&mut self, ctx: &mut Self::Context) {
                if let Some(out) = self.initial.take() {
                    dispatch(&self.router, out, ctx);
                }
            }
        }

        impl<L: Link> Handler<Deliver<$msg>> for $name<L> {
            type Result = ();

            fn handle(&mut self, Deliver(msg): Deliver<$msg>, ctx: &mut Self::Context) {
                if let Some(buffer) = self.extra.buffer() {
                    // Reloading after a panic: messages wait for the reloaded state.
                    return buffer.push(msg);
                }
                self.process(msg, ctx);
            }
        }

        impl<L: Link> $name<L> {
            fn process(&mut self, msg: $msg, ctx: &mut Context<Self>) {
                let _span = self.core.span(self.router.project(), &msg).entered();
                let replies = reply_ids(&msg);
                let fallback = fallback(&msg);
                let injected = self.extra.take_injected();
                let core = &mut self.core;
                let handled = catch_unwind(AssertUnwindSafe(|| {
                    assert!(!injected, "injected failure while handling a message");
                    let mut out = Outbox::default();
                    core.handle(msg, now_millis(), &mut out);
                    out
                }));
                match handled {
                    Ok(out) => {
                        let wrote = !out.writes.is_empty();
                        dispatch(&self.router, out, ctx);
                        self.core.after_handle(&self.router, wrote, &mut self.extra);
                    }
                    Err(_) => {
                        // The message's outbox is dropped: nothing of it is committed or sent.
                        tracing::error!(project = %self.router.project(), "an orchestration actor panicked; reloading it from the database");
                        self.router.fail_replies(&replies);
                        if let Some(envelope) = fallback {
                            self.router.deliver(envelope);
                        }
                        self.on_panic(ctx);
                    }
                }
            }
        }
    };
}

host!(
    /// Hosts a project's [`ProjectCore`].
    ProjectActor, ProjectCore, ProjectMsg, ProjectHost
);
host!(
    /// Hosts an environment's [`EnvironmentCore`].
    EnvironmentActor, EnvironmentCore, EnvironmentMsg, EnvironmentHost
);
host!(
    /// Hosts a run's [`RunCore`].
    RunActor, RunCore, RunMsg, RunHost
);

/// What a host does after each message (`wrote`: the message produced writes).
trait AfterHandle<Extra> {
    fn after_handle<L: Link>(&self, router: &Arc<L>, wrote: bool, extra: &mut Extra);
}

impl AfterHandle<ProjectHost> for ProjectCore {
    fn after_handle<L: Link>(&self, router: &Arc<L>, _: bool, _: &mut ProjectHost) {
        router.set_scheduled(self.has_schedules());
    }
}

impl AfterHandle<EnvironmentHost> for EnvironmentCore {
    fn after_handle<L: Link>(&self, _: &Arc<L>, _: bool, _: &mut EnvironmentHost) {}
}

/// The project actor's host state: messages held while it reloads after a panic.
#[derive(Debug, Default)]
pub struct ProjectHost {
    reloading: Option<Vec<ProjectMsg>>,
    /// The next message's handling panics (feature `failpoints`).
    #[cfg(feature = "failpoints")]
    panic_next: bool,
}

impl ProjectHost {
    fn buffer(&mut self) -> Option<&mut Vec<ProjectMsg>> {
        self.reloading.as_mut()
    }

    fn take_injected(&mut self) -> bool {
        #[cfg(feature = "failpoints")]
        return std::mem::take(&mut self.panic_next);
        #[cfg(not(feature = "failpoints"))]
        false
    }
}

/// An environment actor's host state: messages held while it reloads after a panic.
#[derive(Debug, Default)]
pub struct EnvironmentHost {
    reloading: Option<Vec<EnvironmentMsg>>,
}

impl EnvironmentHost {
    fn buffer(&mut self) -> Option<&mut Vec<EnvironmentMsg>> {
        self.reloading.as_mut()
    }

    fn take_injected(&mut self) -> bool {
        false
    }
}

/// A run actor's host state: its progress towards retirement, and what it holds while it
/// reloads after a panic.
#[derive(Debug, Default)]
pub struct RunHost {
    /// A `Retire` is on its way through the writer.
    asked: bool,
    /// The run wrote something after asking: that `Retire` may arrive before those writes are
    /// committed, so it does not count.
    wrote_since: bool,
    /// Messages held while reloading.
    reloading: Option<Vec<RunMsg>>,
    /// Waiters rescued from the state that panicked.
    rescued: Waiters,
}

impl RunHost {
    fn buffer(&mut self) -> Option<&mut Vec<RunMsg>> {
        self.reloading.as_mut()
    }

    fn take_injected(&mut self) -> bool {
        false
    }

    fn ask<L: Link>(&mut self, run: &RunCore, router: &Arc<L>) {
        self.asked = true;
        self.wrote_since = false;
        router.queue_commit(Vec::new(), vec![Envelope::Retire(run.id())]);
    }
}

impl AfterHandle<RunHost> for RunCore {
    /// Once the run is finished and nobody waits on it, asks (through the writer, so after its
    /// last commit) to be retired: finished runs do not stay in memory.
    fn after_handle<L: Link>(&self, router: &Arc<L>, wrote: bool, state: &mut RunHost) {
        if state.asked {
            state.wrote_since |= wrote;
        } else if self.is_idle() {
            state.ask(self, router);
        }
    }
}

impl<L: Link> ProjectActor<L> {
    /// Holds new messages and asks (through the writer, so after everything it sent) to be
    /// reloaded.
    fn on_panic(&mut self, _: &mut Context<Self>) {
        self.extra.reloading = Some(Vec::new());
        self.router
            .queue_commit(Vec::new(), vec![Envelope::Reload(ReloadTarget::Project)]);
    }
}

impl<L: Link> EnvironmentActor<L> {
    /// Holds new messages and asks (through the writer, so after everything it sent) to be
    /// reloaded.
    fn on_panic(&mut self, _: &mut Context<Self>) {
        self.extra.reloading = Some(Vec::new());
        let target = ReloadTarget::Environment(self.core.id());
        self.router
            .queue_commit(Vec::new(), vec![Envelope::Reload(target)]);
    }
}

impl<L: Link> RunActor<L> {
    /// Rescues the waiters, holds new messages and asks (through the writer, so after
    /// everything it sent) to be reloaded.
    fn on_panic(&mut self, _: &mut Context<Self>) {
        self.extra.rescued = self.core.take_waiters();
        self.extra.reloading = Some(Vec::new());
        let target = ReloadTarget::Run(self.core.id());
        self.router
            .queue_commit(Vec::new(), vec![Envelope::Reload(target)]);
    }
}

/// Sent (through the writer) to an actor that panicked: rebuild the state from the database,
/// then handle the messages held meanwhile.
#[derive(Debug)]
pub struct Reload;

impl Message for Reload {
    type Result = ();
}

impl<L: Link> Handler<Reload> for RunActor<L> {
    type Result = ();

    fn handle(&mut self, _: Reload, ctx: &mut Self::Context) {
        let Some(held) = self.extra.reloading.take() else {
            return;
        };
        let id = self.core.id();
        let mut out = Outbox::default();
        match self.router.load_run(id) {
            Ok(Some(snapshot)) => {
                // What was running is abandoned (and retried where allowed): its waiters may be
                // lost; the rescued waiters wait again on the reloaded state.
                self.core = RunCore::restore(snapshot, now_millis(), &mut out);
                self.core
                    .adopt_waiters(std::mem::take(&mut self.extra.rescued), &mut out);
                tracing::warn!(project = %self.router.project(), run = %id, "run reloaded from the database");
            }
            other => {
                tracing::error!(project = %self.router.project(), run = %id, result = ?other.map(|s| s.is_some()), "could not reload the run; it stops");
                return ctx.stop();
            }
        }
        dispatch(&self.router, out, ctx);
        for msg in held {
            self.process(msg, ctx);
        }
    }
}

impl<L: Link> Handler<Reload> for ProjectActor<L> {
    type Result = ();

    fn handle(&mut self, _: Reload, ctx: &mut Self::Context) {
        let Some(held) = self.extra.reloading.take() else {
            return;
        };
        let mut out = Outbox::default();
        match self
            .router
            .rebuild_project(self.core.key_retention(), &mut out)
        {
            Ok(core) => {
                self.core = core;
                tracing::warn!(project = %self.router.project(), "project reloaded from the database");
            }
            Err(e) => {
                // The messages stay held; the reload is tried again in a second.
                tracing::error!(project = %self.router.project(), error = %e, "could not reload the project; retrying");
                self.extra.reloading = Some(held);
                let retry = Envelope::Reload(ReloadTarget::Project);
                let router = Arc::clone(&self.router);
                ctx.run_later(Duration::from_secs(1), move |_, _| {
                    router.queue_commit(Vec::new(), vec![retry]);
                });
                return;
            }
        }
        dispatch(&self.router, out, ctx);
        self.router.set_scheduled(self.core.has_schedules());
        for msg in held {
            self.process(msg, ctx);
        }
    }
}

impl<L: Link> Handler<Reload> for EnvironmentActor<L> {
    type Result = ();

    fn handle(&mut self, _: Reload, ctx: &mut Self::Context) {
        let Some(held) = self.extra.reloading.take() else {
            return;
        };
        let mut out = Outbox::default();
        self.core = self.router.rebuild_environment(self.core.id(), &mut out);
        dispatch(&self.router, out, ctx);
        for msg in held {
            self.process(msg, ctx);
        }
    }
}

/// Sent by the router to a run actor it is retiring: the actor stops if it is still idle.
#[derive(Debug)]
pub struct ConfirmRetire;

impl Message for ConfirmRetire {
    type Result = ();
}

impl<L: Link> Handler<ConfirmRetire> for RunActor<L> {
    type Result = ();

    fn handle(&mut self, _: ConfirmRetire, ctx: &mut Self::Context) {
        if self.extra.reloading.is_some() {
            self.extra.asked = false;
            return;
        }
        let wrote_since = self.extra.wrote_since;
        self.extra.asked = false;
        if !self.core.is_idle() {
            return;
        }
        if !wrote_since && self.router.finish_retire(self.core.id()) {
            if self.core.step_count() > super::release::LARGE_RUN_STEPS {
                // A large run's state is freed off this arbiter (see `release`).
                let id = self.core.id();
                super::release::release(std::mem::replace(&mut self.core, RunCore::new(id)));
            }
            ctx.stop();
        } else {
            // Ask again: the new request follows the writes made since.
            self.extra.ask(&self.core, &self.router);
        }
    }
}

/// Stops an actor (the project is being unloaded).
#[derive(Debug)]
pub struct Stop;

impl Message for Stop {
    type Result = ();
}

impl<L: Link> Handler<Stop> for ProjectActor<L> {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl<L: Link> Handler<Stop> for EnvironmentActor<L> {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl<L: Link> Handler<Stop> for RunActor<L> {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

#[cfg(feature = "failpoints")]
#[path = "inject.rs"]
mod inject;
#[cfg(feature = "failpoints")]
pub use inject::{InjectPanic, PanicOnNext};
