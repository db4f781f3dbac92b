//! End to end: a workflow an agent registered stays submittable after the agent has gone, and
//! a misspelt one is refused at once with the closest registered name.

use coflux_tests::{Server, post, rust_agent};
use serde_json::json;

const P: &str = "acme";

#[actix_rt::test]
async fn registrations_outlive_their_agent_and_typos_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.setup(P, "production", None).await;
    let mut agent = rust_agent(&server, P, "production", &["--register"]);
    server
        .wait_registered(P, "production", "sum_of_squares")
        .await;
    agent.kill9();

    let runs = format!("/api/projects/{P}/environments/production/runs");
    let submit =
        |target: &str| json!({"module": "examples.repo", "target": target, "arguments": [3]});
    let accepted = post(&server.url, &runs, submit("sum_of_squares")).await;
    assert!(accepted["run_id"].is_string(), "{accepted}");

    let refused = post(&server.url, &runs, submit("sum_of_square")).await;
    assert_eq!(refused["error"]["code"], "workflow_not_found", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("environment 'production'")
            && message.contains("'examples.repo/sum_of_squares'"),
        "{message}"
    );

    // An agent coming back later runs the run accepted while it was away.
    let _agent = rust_agent(&server, P, "production", &[]);
    let run = accepted["run_id"].as_str().unwrap();
    assert_eq!(server.result(P, run, 60).await["value"], 14);
}
