//! What the blob GC tests (local, S3 and PostgreSQL) share: requests to the app, and a project
//! whose recorded run, asset record and log refer to five blobs.

use coflux_core::model::{
    ExecutionId, ExecutionResult, Reference, StepOptions, TargetDefinition, TargetKind, TargetRef,
    Value,
};
use coflux_core::sdk::{Repository, Target, TargetFuture};
use coflux_server::AppState;
use serde_json::json;

/// Sends a request to the app; answers its status and JSON body (or `null`).
macro_rules! call {
    ($app:expr, $req:expr $(,)?) => {{
        let resp = actix_web::test::call_service($app, ($req).to_request()).await;
        let status = resp.status();
        let body = actix_web::test::read_body(resp).await;
        (
            status,
            serde_json::from_slice::<serde_json::Value>(&body).unwrap_or(serde_json::Value::Null),
        )
    }};
}

/// Creates project `$project` through the API.
macro_rules! create_project {
    ($app:expr, $project:expr) => {{
        let (status, body) = call!(
            $app,
            actix_web::test::TestRequest::post()
                .uri("/api/projects")
                .set_json(serde_json::json!({ "name": $project }))
        );
        assert_eq!(status, actix_web::http::StatusCode::CREATED, "{body}");
    }};
}

/// Uploads `$content` as a blob of `$project`; gives its key.
macro_rules! put_blob {
    ($app:expr, $project:expr, $content:expr) => {{
        let content: &[u8] = $content;
        let key = crate::support::sha256(content);
        let uri = format!("/api/projects/{}/blobs/{key}", $project);
        let (status, body) = call!(
            $app,
            actix_web::test::TestRequest::put()
                .uri(&uri)
                .set_payload(content.to_vec())
        );
        assert_eq!(status, actix_web::http::StatusCode::CREATED, "{body}");
        key
    }};
}

/// The status of `HEAD` on a blob (200 present, 404 gone).
macro_rules! head {
    ($app:expr, $project:expr, $key:expr) => {{
        let uri = format!("/api/projects/{}/blobs/{}", $project, $key);
        call!(
            $app,
            actix_web::test::TestRequest::default()
                .method(actix_web::http::Method::HEAD)
                .uri(&uri)
        )
        .0
    }};
}

/// In `$project` of `$state` (served by `$app`): five blobs, referenced by a recorded run (a
/// blob argument, its fragment, a fragment of the result), an asset record and a log message
/// (flushed). Gives the [`Referenced`] blobs.
macro_rules! referenced_blobs {
    ($app:expr, $state:expr, $project:expr) => {{
        let project: &str = $project;
        let argument = put_blob!($app, project, b"arg1");
        let argument_fragment = put_blob!($app, project, b"frg1");
        let result = put_blob!($app, project, b"res1");
        let asset = put_blob!($app, project, b"ast1");
        let logged = put_blob!($app, project, b"log1");
        let state: &coflux_server::AppState = $state;
        let execution = crate::blob_gc_fixture::record_run_in(
            state,
            project,
            &argument,
            &argument_fragment,
            &result,
        )
        .await;
        let (status, body) = call!(
            $app,
            actix_web::test::TestRequest::post()
                .uri(&format!("/api/projects/{project}/assets"))
                .set_json(serde_json::json!(
                    {"entries": {"a.txt": {"blob_key": asset, "size": 4}}}
                ))
        );
        assert_eq!(status, actix_web::http::StatusCode::CREATED, "{body}");
        let asset_id = body["id"].as_str().unwrap().to_owned();
        crate::blob_gc_fixture::log_blob(state, project, execution, &logged).await;
        crate::blob_gc_fixture::Referenced {
            argument,
            argument_fragment,
            result,
            asset,
            asset_id,
            logged,
        }
    }};
}

/// The blobs [`referenced_blobs!`] refers to, and the asset record's id.
pub(crate) struct Referenced {
    pub(crate) argument: String,
    pub(crate) argument_fragment: String,
    pub(crate) result: String,
    pub(crate) asset: String,
    pub(crate) asset_id: String,
    pub(crate) logged: String,
}

impl Referenced {
    /// The five referenced keys.
    pub(crate) fn keys(&self) -> [&String; 5] {
        [
            &self.argument,
            &self.argument_fragment,
            &self.result,
            &self.asset,
            &self.logged,
        ]
    }
}

/// A workflow that returns a value holding a fragment reference to a given blob.
struct ReturnsFragment {
    key: String,
}

impl Target for ReturnsFragment {
    fn definition(&self) -> TargetDefinition {
        TargetDefinition {
            target: TargetRef::new("gc_test", "returns_fragment"),
            kind: TargetKind::Workflow,
            parameters: Vec::new(),
            options: StepOptions::default(),
            instruction: None,
        }
    }

    fn invoke(&self, _arguments: Vec<Value>) -> TargetFuture {
        let value = Value::Raw {
            data: json!({"type": "ref", "index": 0}),
            references: vec![fragment(&self.key)],
        };
        Box::pin(async move { Ok(value) })
    }
}

fn fragment(key: &str) -> Reference {
    Reference::Fragment {
        format: "pickle".into(),
        blob_key: key.to_owned(),
        size: 4,
        metadata: json!({}),
    }
}

/// Records, through the embedded `Project` API, a run in project `name` whose argument is a
/// blob value with a fragment and whose result holds a fragment; waits for its result. Gives
/// the execution.
pub(crate) async fn record_run_in(
    state: &AppState,
    name: &str,
    argument: &str,
    argument_fragment: &str,
    result: &str,
) -> ExecutionId {
    let project = state.coflux.existing_project(name).await.unwrap();
    project
        .create_environment("production", None)
        .await
        .unwrap();
    let worker = project
        .serve(
            "production",
            Repository::new().with(ReturnsFragment {
                key: result.to_owned(),
            }),
        )
        .await
        .unwrap();
    let run = project
        .submit_target(
            "production",
            TargetRef::new("gc_test", "returns_fragment"),
            vec![Value::Blob {
                key: argument.to_owned(),
                size: 4,
                references: vec![fragment(argument_fragment)],
            }],
            StepOptions::default(),
        )
        .await
        .unwrap();
    match run.raw_result().await.unwrap() {
        ExecutionResult::Value { value } => assert_eq!(value.references(), [fragment(result)]),
        other => panic!("{other:?}"),
    }
    worker.stop();
    run.execution
}

/// Logs a message of `execution` whose value is blob `key`, and flushes the log store.
pub(crate) async fn log_blob(state: &AppState, project: &str, execution: ExecutionId, key: &str) {
    let values = std::collections::BTreeMap::from([(
        "table".to_owned(),
        Value::Blob {
            key: key.to_owned(),
            size: 4,
            references: Vec::new(),
        },
    )]);
    let log = coflux_server::logs::LogRecord {
        execution,
        timestamp_ms: coflux_server::logs::now_ms(),
        level: 2,
        template: Some("wrote {table}".into()),
        values,
    };
    state.logs.append(project, vec![log]).unwrap();
    state.logs.flush().await.unwrap();
}
