//! Failure injection for supervision tests (feature `failpoints`): an actor's handler panics
//! now, or while it handles its next message.

use std::panic::catch_unwind;

use actix::{Handler, Message};

use super::{EnvironmentActor, Link, ProjectActor, RunActor};

/// Makes an actor's handler panic.
#[derive(Debug)]
pub struct InjectPanic;

impl Message for InjectPanic {
    type Result = ();
}

impl<L: Link> Handler<InjectPanic> for RunActor<L> {
    type Result = ();

    fn handle(&mut self, _: InjectPanic, ctx: &mut Self::Context) {
        let id = self.core.id();
        if catch_unwind(|| panic!("injected failure in run {id}")).is_err() {
            self.on_panic(ctx);
        }
    }
}

impl<L: Link> Handler<InjectPanic> for ProjectActor<L> {
    type Result = ();

    fn handle(&mut self, _: InjectPanic, ctx: &mut Self::Context) {
        if catch_unwind(|| panic!("injected failure in the project actor")).is_err() {
            self.on_panic(ctx);
        }
    }
}

impl<L: Link> Handler<InjectPanic> for EnvironmentActor<L> {
    type Result = ();

    fn handle(&mut self, _: InjectPanic, ctx: &mut Self::Context) {
        let id = self.core.id();
        if catch_unwind(|| panic!("injected failure in environment {id}")).is_err() {
            self.on_panic(ctx);
        }
    }
}

/// Makes the project actor panic while it handles its next message (whose callers then get
/// an error).
#[derive(Debug)]
pub struct PanicOnNext;

impl Message for PanicOnNext {
    type Result = ();
}

impl<L: Link> Handler<PanicOnNext> for ProjectActor<L> {
    type Result = ();

    fn handle(&mut self, _: PanicOnNext, _: &mut Self::Context) {
        self.extra.panic_next = true;
    }
}
