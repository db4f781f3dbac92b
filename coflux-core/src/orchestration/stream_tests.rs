//! Streams through the deterministic [`Harness`]: items read by several consumers from the
//! start, views, the producer's demand against the slowest acknowledgement, endings that
//! follow the producer's result, and items kept across a restart.

use serde_json::json;

use super::harness::Harness;
use super::messages::{Envelope, Reply, ReplyTo, RunMsg};
use crate::model::{
    ErrorInfo, ExecutionId, ExecutionResult, StepOptions, StreamClosure, StreamId, StreamOp,
    StreamReply, Stride, TargetRef, Value,
};
use crate::store::Durability;
use crate::store::sqlite::SqliteStore;

fn wf() -> TargetRef {
    TargetRef::new("app", "main")
}
fn task() -> TargetRef {
    TargetRef::new("app", "gen")
}

fn setup(dir: &tempfile::TempDir) -> (Harness, ExecutionId, ExecutionId) {
    let store = SqliteStore::open(&dir.path().join("p.sqlite"), Durability::Normal).unwrap();
    let mut h = Harness::new(store).unwrap();
    let prod = h.create_environment("production", None).unwrap().id;
    h.connect_worker(prod, 1, &[wf(), task()], 100);
    let (_, root) = h
        .submit("production", &wf(), vec![], StepOptions::default())
        .unwrap();
    let producer = h
        .call(root, &task(), vec![], StepOptions::default())
        .unwrap();
    (h, root, producer)
}

fn send(h: &mut Harness, op: StreamOp) -> ReplyTo {
    let run = op.step().run;
    h.request_later(|reply| Envelope::Run(run, RunMsg::Stream { op, reply }))
}

fn answer(h: &mut Harness, to: ReplyTo) -> Option<Result<StreamReply, String>> {
    match h.reply(to)? {
        Reply::Stream(r) => Some(r.map_err(|e| e.code().to_string())),
        other => panic!("unexpected reply {other:?}"),
    }
}

fn now(h: &mut Harness, op: StreamOp) -> Result<StreamReply, String> {
    let to = send(h, op);
    answer(h, to).expect("answered at once")
}

fn register(h: &mut Harness, producer: ExecutionId, buffer: Option<u32>) -> StreamId {
    let op = StreamOp::Register {
        execution: producer,
        position: 0,
        buffer,
        timeout_ms: None,
    };
    match now(h, op) {
        Ok(StreamReply::Registered { index, head: -1 }) => StreamId {
            step: producer.step,
            index,
        },
        other => panic!("{other:?}"),
    }
}

fn append(h: &mut Harness, producer: ExecutionId, sequence: u64) -> Result<StreamReply, String> {
    let op = StreamOp::Append {
        execution: producer,
        index: 0,
        sequence,
        value: Value::raw(json!(sequence * 10)),
    };
    now(h, op)
}

fn read(consumer: ExecutionId, subscription: u32, stream: StreamId, from: u64) -> StreamOp {
    StreamOp::Read {
        consumer,
        subscription,
        stream,
        from,
        stride: Stride::default(),
        max: 16,
        wait: true,
    }
}

fn items(reply: &StreamReply) -> (Vec<u64>, Option<&'static str>) {
    match reply {
        StreamReply::Items { items, closed, .. } => (
            items.iter().map(|(s, _)| *s).collect(),
            closed.as_ref().map(StreamClosure::reason),
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn stream_consumers_each_read_every_item_from_the_start_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, root, producer) = setup(&dir);
    let stream = register(&mut h, producer, None);
    h.complete(producer, json!({"type": "stream"}));
    // A read with nothing to give waits for the first item.
    let waiting = send(&mut h, read(root, 0, stream, 0));
    assert!(answer(&mut h, waiting).is_none());
    append(&mut h, producer, 0).unwrap();
    assert_eq!(items(&answer(&mut h, waiting).unwrap().unwrap()).0, vec![0]);
    append(&mut h, producer, 1).unwrap();
    // A repeat of a stored item is accepted once; a gap is refused.
    append(&mut h, producer, 1).unwrap();
    assert_eq!(append(&mut h, producer, 5).unwrap_err(), "stream_rejected");
    let mut h = h.restart().unwrap();
    append(&mut h, producer, 2).unwrap();
    let close = StreamOp::Close {
        execution: producer,
        index: 0,
        closure: StreamClosure::Complete,
    };
    now(&mut h, close).unwrap();
    for subscription in [1, 2] {
        let all = now(&mut h, read(root, subscription, stream, 0)).unwrap();
        assert_eq!(items(&all), (vec![0, 1, 2], Some("complete")));
    }
    assert_eq!(append(&mut h, producer, 3).unwrap_err(), "stream_rejected");
    // A view: the partition of odd sequences.
    let odd = StreamOp::Read {
        consumer: root,
        subscription: 3,
        stream,
        from: 1,
        stride: Stride {
            start: 1,
            stop: None,
            step: 2,
        },
        max: 16,
        wait: true,
    };
    assert_eq!(
        items(&now(&mut h, odd).unwrap()),
        (vec![1], Some("complete"))
    );
}

#[test]
fn stream_demand_follows_the_slowest_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, root, producer) = setup(&dir);
    let stream = register(&mut h, producer, Some(1));
    let demand = |granted| StreamOp::Demand {
        execution: producer,
        index: 0,
        granted,
    };
    // No consumer: `buffer` items may be made ahead.
    assert_eq!(
        now(&mut h, demand(0)).unwrap(),
        StreamReply::Demand { target: Some(1) }
    );
    let waiting = send(&mut h, demand(1));
    assert!(answer(&mut h, waiting).is_none(), "no more until consumed");
    // Two consumers: the target is the slowest one's position + buffer + 1.
    let a = send(&mut h, read(root, 0, stream, 0));
    let b = send(&mut h, read(root, 1, stream, 0));
    assert_eq!(
        answer(&mut h, waiting).unwrap().unwrap(),
        StreamReply::Demand { target: Some(2) }
    );
    append(&mut h, producer, 0).unwrap();
    append(&mut h, producer, 1).unwrap();
    assert_eq!(items(&answer(&mut h, a).unwrap().unwrap()).0, vec![0]);
    assert_eq!(items(&answer(&mut h, b).unwrap().unwrap()).0, vec![0]);
    let waiting = send(&mut h, demand(2));
    let ack = |subscription, count, sequence| StreamOp::Ack {
        consumer: root,
        subscription,
        stream,
        count,
        sequence,
    };
    now(&mut h, ack(0, 1, 0)).unwrap();
    assert!(answer(&mut h, waiting).is_none(), "the other consumer lags");
    now(&mut h, ack(1, 1, 0)).unwrap();
    assert_eq!(
        answer(&mut h, waiting).unwrap().unwrap(),
        StreamReply::Demand { target: Some(3) }
    );
    // A consumer that leaves no longer holds the producer back.
    let waiting = send(&mut h, demand(3));
    now(&mut h, read(root, 0, stream, 1)).unwrap();
    now(&mut h, ack(0, 2, 1)).unwrap();
    assert!(answer(&mut h, waiting).is_none());
    let leave = StreamOp::Unsubscribe {
        consumer: root,
        subscription: 1,
        stream,
    };
    now(&mut h, leave).unwrap();
    assert_eq!(
        answer(&mut h, waiting).unwrap().unwrap(),
        StreamReply::Demand { target: Some(4) }
    );
}

#[test]
fn stream_ends_with_its_producer_unless_it_returned() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, root, producer) = setup(&dir);
    let stream = register(&mut h, producer, None);
    append(&mut h, producer, 0).unwrap();
    let waiting = send(&mut h, read(root, 0, stream, 1));
    h.report(
        producer,
        ExecutionResult::Error {
            error: ErrorInfo::new("builtins.ValueError", "boom"),
            retry: None,
        },
    );
    match answer(&mut h, waiting).unwrap().unwrap() {
        StreamReply::Items {
            items,
            closed: Some(StreamClosure::Errored { error }),
            ..
        } => {
            assert!(items.is_empty());
            assert_eq!(error.message, "boom");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(append(&mut h, producer, 1).unwrap_err(), "stream_rejected");
    // A producer that returned its stream goes on feeding it.
    let second = h
        .call(root, &task(), vec![], StepOptions::default())
        .unwrap();
    let stream = register(&mut h, second, None);
    h.complete(second, json!({"type": "stream"}));
    append(&mut h, second, 0).unwrap();
    let all = now(&mut h, read(root, 1, stream, 0)).unwrap();
    assert_eq!(items(&all), (vec![0], None));
}
