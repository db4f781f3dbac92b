//! The routing rule, the local-blob refusal and the advertise URL check.

use super::*;
use crate::config::parse_advertise_url;

fn node(id: &str, live: bool, blobs: &str) -> NodeRow {
    NodeRow {
        id: id.into(),
        blobs: blobs.into(),
        heartbeat_at: 0,
        live,
    }
}

fn lease(project: &str, node: &str, expired: bool) -> LeaseRow {
    LeaseRow {
        project: project.into(),
        node: node.into(),
        epoch: 3,
        expires_at: 0,
        expired,
    }
}

#[test]
fn cluster_routes_to_the_owner_of_an_unexpired_lease() {
    let nodes = [node("http://a", true, "s3"), node("http://b", true, "s3")];
    let held = lease("p", "http://b", false);
    assert_eq!(
        decide("http://a", "p", Some(&held), &nodes),
        Route::Remote("http://b".into())
    );
    assert_eq!(decide("http://b", "p", Some(&held), &nodes), Route::Local);
}

#[test]
fn cluster_routes_unowned_projects_by_rendezvous_among_live_nodes_only() {
    let nodes = [
        node("http://a", true, "s3"),
        node("http://b", true, "s3"),
        node("http://dead", false, "s3"),
    ];
    let mut seen = std::collections::HashSet::new();
    for i in 0..50 {
        let project = format!("p{i}");
        let expired = lease(&project, "http://dead", true);
        // Both nodes agree on one owner, never the dead node, whether the lease is
        // missing or expired.
        let from_a = decide("http://a", &project, Some(&expired), &nodes);
        let from_b = decide("http://b", &project, None, &nodes);
        let owner_a = match from_a {
            Route::Local => "http://a".to_string(),
            Route::Remote(n) => n,
        };
        let owner_b = match from_b {
            Route::Local => "http://b".to_string(),
            Route::Remote(n) => n,
        };
        assert_eq!(owner_a, owner_b, "{project}");
        assert_ne!(owner_a, "http://dead");
        seen.insert(owner_a);
    }
    assert_eq!(seen.len(), 2, "50 projects spread over both nodes");
}

#[test]
fn cluster_refuses_local_blobs_with_another_live_node() {
    let alone = [
        node("http://a", true, "local"),
        node("http://old", false, "local"),
    ];
    assert!(check_blobs(&alone, "http://a", "local").is_ok());
    let two = [node("http://a", true, "s3"), node("http://b", true, "s3")];
    let err = check_blobs(&two, "http://a", "local")
        .unwrap_err()
        .to_string();
    assert!(err.contains("blobs must be in a shared bucket"), "{err}");
    assert!(err.contains("http://b"), "{err}");
    assert!(check_blobs(&two, "http://a", "s3").is_ok());
    let other_local = [node("http://b", true, "local")];
    let err = check_blobs(&other_local, "http://a", "s3")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("http://b shares this database with local blobs"),
        "{err}"
    );
}

#[test]
fn cluster_advertise_urls_are_checked() {
    assert_eq!(
        parse_advertise_url("http://10.0.0.5:7777/").unwrap(),
        "http://10.0.0.5:7777"
    );
    assert!(parse_advertise_url("https://node-1.internal").is_ok());
    for bad in ["10.0.0.5:7777", "http://", "http://a/b", "ftp://a"] {
        assert!(parse_advertise_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn cluster_project_paths_name_their_project() {
    use super::forward::project_of;
    assert_eq!(project_of("/api/projects/demo/runs/R1"), Some("demo"));
    assert_eq!(project_of("/api/projects/demo"), Some("demo"));
    assert_eq!(project_of("/projects/demo/runs"), Some("demo"));
    assert_eq!(project_of("/api/projects"), None);
    assert_eq!(project_of("/api/projects/"), None);
    assert_eq!(project_of("/api/cluster"), None);
}
