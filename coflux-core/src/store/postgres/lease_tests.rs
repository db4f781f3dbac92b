//! Leases and fencing against a real PostgreSQL (`COFLUX_TEST_DATABASE_URL`; skipped without
//! it unless `COFLUX_PG_TESTS=require`).

use std::time::Duration;

use super::*;
use crate::store::conformance_tests::fixtures::{batches, run};
use crate::store::conformance_tests::{TestSchema, test_database_url};
use crate::store::postgres::{Fence, PgStore};
use crate::store::{ProjectStore, StoreError};

/// A project name and two node ids no other test uses.
fn names(tag: &str) -> (String, String, String) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let id = format!("{tag}-{}-{nanos}", std::process::id());
    (
        format!("lease-{id}"),
        format!("http://a-{id}"),
        format!("http://b-{id}"),
    )
}

#[test]
fn lease_is_exclusive_until_it_expires_and_each_taking_bumps_the_epoch() {
    let Some(url) = test_database_url() else {
        return;
    };
    let (project, a, b) = names("excl");
    let lease = Duration::from_millis(600);
    let node_a = Leases::connect(&url, &a, lease).unwrap();
    let node_b = Leases::connect(&url, &b, lease).unwrap();
    let Acquired::Owned(first) = node_a.acquire(&project).unwrap() else {
        panic!("a free project is taken");
    };
    assert_eq!(
        node_b.acquire(&project).unwrap(),
        Acquired::Elsewhere { node: a.clone() }
    );
    // Renewed, it stays A's past its first expiry.
    std::thread::sleep(Duration::from_millis(400));
    let loaded = |epoch| [(project.clone(), epoch)];
    assert_eq!(node_a.renew(&loaded(first)).unwrap(), loaded(first));
    // Only the listed (loaded) projects are renewed.
    assert!(node_a.renew(&[]).unwrap().is_empty());
    std::thread::sleep(Duration::from_millis(400));
    assert!(matches!(
        node_b.acquire(&project).unwrap(),
        Acquired::Elsewhere { .. }
    ));
    // Not renewed, it expires: B takes it with a higher epoch, and A's renewal no longer
    // returns it.
    std::thread::sleep(Duration::from_millis(700));
    let Acquired::Owned(second) = node_b.acquire(&project).unwrap() else {
        panic!("an expired lease is taken");
    };
    assert!(second > first);
    assert!(node_a.renew(&loaded(first)).unwrap().is_empty());
    let row = node_a.lease(&project).unwrap().unwrap();
    assert_eq!((row.node.as_str(), row.epoch), (b.as_str(), second));
    // A node taking back its own (e.g. after a restart) bumps the epoch too; releasing lets
    // another node take it at once.
    let Acquired::Owned(third) = node_b.acquire(&project).unwrap() else {
        panic!("a node takes back its own lease");
    };
    assert_eq!(third, second + 1);
    node_b.release(&project, second).unwrap();
    assert!(
        node_b.lease(&project).unwrap().is_some(),
        "a stale epoch releases nothing"
    );
    node_b.release(&project, third).unwrap();
    let Acquired::Owned(fourth) = node_a.acquire(&project).unwrap() else {
        panic!("a released lease is taken at once");
    };
    // A lease that expired but that nobody took is renewed by its owner, same epoch.
    std::thread::sleep(lease + Duration::from_millis(200));
    assert!(node_a.lease(&project).unwrap().unwrap().expired);
    assert_eq!(node_a.renew(&loaded(fourth)).unwrap(), loaded(fourth));
    assert!(!node_a.lease(&project).unwrap().unwrap().expired);
    node_a.release(&project, fourth).unwrap();
    assert!(node_a.lease(&project).unwrap().is_none());
}

#[test]
fn lease_fences_the_writes_of_a_node_that_lost_it() {
    let Some(url) = test_database_url() else {
        return;
    };
    let (project, a, b) = names("fence");
    let schema = TestSchema::new(&url, "fence");
    // Long enough that B's steps between taking the lease and writing fit in it on a loaded
    // machine; each wait below outlasts it.
    let lease = Duration::from_millis(2000);
    let node_a = Leases::connect(&url, &a, lease).unwrap();
    let node_b = Leases::connect(&url, &b, lease).unwrap();
    let Acquired::Owned(epoch) = node_a.acquire(&project).unwrap() else {
        panic!("a free project is taken");
    };
    let fence = |node: &str, epoch| {
        Fence::Lease(FenceCheck {
            project: project.clone(),
            node: node.to_owned(),
            epoch,
            idle_limit: Duration::from_secs(5),
            lease,
        })
    };
    let mut store_a = PgStore::open(&schema.location)
        .unwrap()
        .with_fence(fence(&a, epoch))
        .unwrap();
    let all = batches();
    store_a.apply(&all[0]).unwrap();
    // A is paused past its lease; B takes the project.
    std::thread::sleep(lease + Duration::from_millis(300));
    let Acquired::Owned(taken) = node_b.acquire(&project).unwrap() else {
        panic!("an expired lease is taken");
    };
    let before = store_a.load().unwrap();
    let error = store_a.apply(&all[1]).unwrap_err();
    assert!(
        matches!(&error, StoreError::Fenced { project: p, epoch: e } if *p == project && *e == epoch),
        "{error:?}"
    );
    assert_eq!(error.code(), "store_fenced");
    assert_eq!(
        store_a.load().unwrap(),
        before,
        "a fenced batch writes nothing"
    );
    // The new owner writes; A stays fenced even once B renews.
    let mut store_b = PgStore::open(&schema.location)
        .unwrap()
        .with_fence(fence(&b, taken))
        .unwrap();
    store_b.apply(&all[1]).unwrap();
    node_b.renew(&[(project.clone(), taken)]).unwrap();
    assert!(matches!(
        store_a.apply(&[run(77, 1, None)]),
        Err(StoreError::Fenced { .. })
    ));
    assert!(store_b.load_run(crate::model::RunId(77)).unwrap().is_none());
    // An expired lease fences its owner even if nobody took the project yet.
    std::thread::sleep(lease + Duration::from_millis(300));
    assert!(matches!(
        store_b.apply(&[run(78, 1, None)]),
        Err(StoreError::Fenced { .. })
    ));
    node_b.release(&project, taken).unwrap();
}

#[test]
fn lease_nodes_are_live_while_they_beat() {
    let Some(url) = test_database_url() else {
        return;
    };
    let (_, a, _) = names("nodes");
    let node_a = Leases::connect(&url, &a, Duration::from_millis(400)).unwrap();
    node_a.heartbeat("s3").unwrap();
    let row = |l: &Leases| l.nodes().unwrap().into_iter().find(|n| n.id == a).unwrap();
    assert!(row(&node_a).live);
    assert_eq!(row(&node_a).blobs, "s3");
    // Live means a beat within half a lease.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!row(&node_a).live);
}

#[test]
fn lease_rendezvous_spreads_projects_and_moves_only_the_lost_nodes_ones() {
    let three: Vec<String> = ["http://a", "http://b", "http://c"]
        .map(String::from)
        .into();
    let two: Vec<String> = ["http://a", "http://b"].map(String::from).into();
    let mut counts = std::collections::HashMap::new();
    for i in 0..300 {
        let project = format!("p{i}");
        let before = preferred_node(&three, &project).unwrap();
        *counts.entry(before).or_insert(0) += 1;
        let after = preferred_node(&two, &project).unwrap();
        if before != "http://c" {
            assert_eq!(before, after, "{project} moved though its node stayed");
        }
    }
    assert!(counts.values().all(|&n| n > 60), "{counts:?}");
    assert_eq!(preferred_node(&[], "p"), None);
}

/// After its lease connection came back (PostgreSQL restarted), a node takes over no other
/// node's project for one lease: the owners may be replaying what PostgreSQL lost.
#[test]
fn lease_takeovers_pause_for_a_lease_after_the_connection_came_back() {
    let Some(url) = test_database_url() else {
        return;
    };
    let (_, a, _) = names("pause");
    let lease = Duration::from_millis(800);
    let node_a = Leases::connect(&url, &a, lease).unwrap();
    node_a.heartbeat("local").unwrap();
    assert!(!node_a.takeovers_paused(), "a node starts without a pause");
    let pid: i32 = node_a
        .with(|c| Ok(c.query_one("SELECT pg_backend_pid()", &[])?.get(0)))
        .unwrap();
    let mut side = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    side.execute("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    node_a.heartbeat("local").unwrap();
    assert!(node_a.takeovers_paused());
    std::thread::sleep(lease + Duration::from_millis(100));
    assert!(!node_a.takeovers_paused());
}

/// The lease of a project that does not exist (any more) is forgotten once expired, never
/// while it runs.
#[test]
fn lease_forgetting_deletes_only_an_expired_lease() {
    let Some(url) = test_database_url() else {
        return;
    };
    let (project, a, _) = names("forget");
    let lease = Duration::from_millis(400);
    let node_a = Leases::connect(&url, &a, lease).unwrap();
    assert!(matches!(node_a.acquire(&project), Ok(Acquired::Owned(_))));
    node_a.forget_expired(&project).unwrap();
    assert!(node_a.lease(&project).unwrap().is_some(), "unexpired: kept");
    std::thread::sleep(lease + Duration::from_millis(100));
    node_a.forget_expired(&project).unwrap();
    assert!(node_a.lease(&project).unwrap().is_none(), "expired: gone");
}
