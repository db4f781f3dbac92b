//! `coflux.toml`: the CLI reads server, project, environment and token from the nearest one
//! (current directory or a parent); `COFLUX_*` variables and flags win over it.

use std::path::Path;
use std::process::{Command, Output};

use coflux_core::sdk::Repository;

use crate::support::{TestServer, greet, ok, stderr};

/// `coflux` in `dir` with only the given `COFLUX_*` variables.
fn coflux_in(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_coflux"));
    command.args(args).current_dir(dir);
    for name in [
        "COFLUX_SERVER",
        "COFLUX_PROJECT",
        "COFLUX_ENVIRONMENT",
        "COFLUX_TOKEN",
    ] {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

/// A server with project `demo`, whose `production` environment serves `greet`.
fn demo_server() -> TestServer {
    TestServer::start_with("demo", |project| async move {
        project
            .create_environment("production", None)
            .await
            .unwrap();
        project
            .serve("production", Repository::new().with(greet))
            .await
            .unwrap();
    })
}

#[test]
fn the_nearest_coflux_toml_gives_defaults_that_variables_and_flags_override() {
    let server = demo_server();
    let root = tempfile::tempdir().unwrap();
    std::fs::write(
        root.path().join("coflux.toml"),
        format!(
            "server = \"{}\"\nproject = \"demo\"\nenvironment = \"production\"\n",
            server.url
        ),
    )
    .unwrap();
    let nested = root.path().join("src/app");
    std::fs::create_dir_all(&nested).unwrap();

    let out = ok(coflux_in(
        &nested,
        &[],
        &["submit", "demo/greet", "\"toml\""],
    ));
    assert_eq!(out.trim(), "\"Hello, toml!\"");

    // A variable wins over the file, and a flag over both.
    let env = [("COFLUX_ENVIRONMENT", "staging")];
    let refused = coflux_in(&nested, &env, &["submit", "demo/greet", "\"x\""]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("staging"), "{}", stderr(&refused));
    let out = ok(coflux_in(
        &nested,
        &env,
        &["-e", "production", "submit", "demo/greet", "\"flag\""],
    ));
    assert_eq!(out.trim(), "\"Hello, flag!\"");
    let elsewhere = coflux_in(
        &nested,
        &[],
        &["--server", "http://127.0.0.1:9", "projects", "list"],
    );
    assert_eq!(elsewhere.status.code(), Some(1));
    assert!(
        stderr(&elsewhere).contains("127.0.0.1:9"),
        "{}",
        stderr(&elsewhere)
    );

    // A broken file is named.
    std::fs::write(nested.join("coflux.toml"), "project = [").unwrap();
    let broken = coflux_in(&nested, &[], &["projects", "list"]);
    assert_eq!(broken.status.code(), Some(1));
    assert!(
        stderr(&broken).contains("coflux.toml"),
        "{}",
        stderr(&broken)
    );
}

/// `--server` with the nodes of a cluster: a node that cannot be reached is passed over (the
/// request never reached it, so even a submission goes to the next), and when none can be
/// reached the error names them all.
#[test]
fn the_first_reachable_of_several_servers_answers() {
    let server = demo_server();
    let dir = tempfile::tempdir().unwrap();
    let servers = format!("http://127.0.0.1:9,{}", server.url);
    let env = [
        ("COFLUX_SERVER", servers.as_str()),
        ("COFLUX_PROJECT", "demo"),
        ("COFLUX_ENVIRONMENT", "production"),
    ];
    let out = ok(coflux_in(
        dir.path(),
        &env,
        &["submit", "demo/greet", "\"cluster\""],
    ));
    assert_eq!(out.trim(), "\"Hello, cluster!\"");

    let none = coflux_in(
        dir.path(),
        &[],
        &[
            "--server",
            "http://127.0.0.1:9,http://127.0.0.1:7",
            "projects",
            "list",
        ],
    );
    assert_eq!(none.status.code(), Some(1));
    let message = stderr(&none);
    assert!(
        message.contains("127.0.0.1:9") && message.contains("127.0.0.1:7"),
        "{message}"
    );
}
