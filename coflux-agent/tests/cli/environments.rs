//! `coflux environments update NAME --parent P | --no-parent`: re-basing an environment,
//! refusing cycles, and what the new lineage changes (where a step may be re-run).

use coflux_core::sdk::Repository;

use crate::support::{TestServer, greet, json_of, ok, stderr};

fn p<'a>(args: &[&'a str]) -> Vec<&'a str> {
    [&["-p", "demo"][..], args].concat()
}

fn parents(server: &TestServer) -> Vec<(String, String)> {
    let list = json_of(server.coflux(&["-p", "demo", "environments", "list", "-o", "json"]));
    list["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let parent = e["parent"].as_str().unwrap_or("-").to_owned();
            (e["name"].as_str().unwrap().to_owned(), parent)
        })
        .collect()
}

#[test]
fn environments_are_re_based_unless_that_makes_a_cycle() {
    let server = TestServer::start_with("demo", |project| async move {
        project
            .create_environment("production", None)
            .await
            .unwrap();
        project
            .create_environment("staging", Some("production"))
            .await
            .unwrap();
        project.create_environment("dev", None).await.unwrap();
        for env in ["production", "dev"] {
            project
                .serve(env, Repository::new().with(greet))
                .await
                .unwrap();
        }
    });

    // A run of production cannot be re-run in dev while dev does not descend from it.
    let result = json_of(server.coflux(&p(&[
        "-e",
        "production",
        "-o",
        "json",
        "submit",
        "demo/greet",
        "\"ada\"",
    ])));
    let step = format!("{}:1", result["run_id"].as_str().unwrap());
    let refused = server.coflux(&p(&["-e", "dev", "runs", "rerun", &step]));
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("environment_invalid"),
        "{}",
        stderr(&refused)
    );

    let out = ok(server.coflux(&p(&[
        "environments",
        "update",
        "dev",
        "--parent",
        "staging",
    ])));
    assert_eq!(out.trim(), "environment 'dev' updated (parent 'staging')");
    ok(server.coflux(&p(&["-e", "dev", "runs", "rerun", &step])));

    // production → staging → dev: neither ancestor may inherit from dev, nor dev from itself.
    for (env, parent) in [("production", "dev"), ("staging", "dev"), ("dev", "dev")] {
        let cycle = server.coflux(&p(&["environments", "update", env, "--parent", parent]));
        assert_eq!(cycle.status.code(), Some(1), "{env} ← {parent}");
        let message = stderr(&cycle);
        assert!(
            message.contains("environment_cycle") && message.contains(&format!("'{env}'")),
            "{message}"
        );
    }
    let missing = server.coflux(&p(&[
        "environments",
        "update",
        "dev",
        "--parent",
        "nowhere",
    ]));
    assert!(
        stderr(&missing).contains("environment_not_found"),
        "{}",
        stderr(&missing)
    );
    let neither = server.coflux(&p(&["environments", "update", "dev"]));
    assert_ne!(
        neither.status.code(),
        Some(0),
        "--parent or --no-parent is required"
    );

    let updated = json_of(server.coflux(&p(&[
        "environments",
        "update",
        "staging",
        "--no-parent",
        "-o",
        "json",
    ])));
    assert_eq!(updated["name"], "staging");
    assert_eq!(updated["parent"], serde_json::Value::Null);
    let mut seen = parents(&server);
    seen.sort();
    assert_eq!(
        seen,
        [
            ("dev".to_owned(), "staging".to_owned()),
            ("production".to_owned(), "-".to_owned()),
            ("staging".to_owned(), "-".to_owned()),
        ]
    );
    // Now production is no ancestor of dev: no more re-runs there.
    let refused = server.coflux(&p(&["-e", "dev", "runs", "rerun", &step]));
    assert!(
        stderr(&refused).contains("environment_invalid"),
        "{}",
        stderr(&refused)
    );
}
