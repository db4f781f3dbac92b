//! Parsing real lines (from the protocol note's transcript of coflux 0.12.0) and writing them.

use serde_json::json;

use super::*;
use crate::model::{ParamSelection, StepOptions, TargetKind};

fn notification(line: &str) -> AdapterNotification {
    match parse_adapter_line(line) {
        Ok(FromAdapter::Notification(n)) => n,
        other => panic!("expected a notification from {line}, got {other:?}"),
    }
}

fn request(line: &str) -> (u64, AdapterRequest) {
    match parse_adapter_line(line) {
        Ok(FromAdapter::Request { id, request }) => (id, request),
        other => panic!("expected a request from {line}, got {other:?}"),
    }
}

#[test]
fn parses_adapter_notifications() {
    assert_eq!(
        notification(r#"{"method":"ready","params":{"version":"0.12"}}"#),
        AdapterNotification::Ready(Ready {
            version: "0.12".into(),
            concurrent: false,
            push_results: false,
        })
    );
    let AdapterNotification::Log(log) = notification(
        r#"{"method":"log","params":{"execution_id":"E1","level":2,"template":"starting with {n}","values":{"n":{"type":"inline","format":"json","value":5,"references":[]}}}}"#,
    ) else {
        panic!()
    };
    assert_eq!(log.level, 2);
    assert_eq!(
        log.values.unwrap()["n"],
        WireValue::inline(json!(5), vec![])
    );

    let AdapterNotification::ExecutionError(error) = notification(
        r#"{"method":"execution_error","params":{"execution_id":"E6","error":{"type":"builtins.ValueError","message":"bad value 7","traceback":"Traceback ..."}}}"#,
    ) else {
        panic!()
    };
    assert_eq!(error.error.error_type, "builtins.ValueError");
    assert_eq!(error.error.retryable, None);

    let AdapterNotification::ExecutionResult(result) = notification(
        r#"{"method":"execution_result","params":{"execution_id":"E1","result":{"type":"inline","format":"json","value":{"type":"dict","items":["x",6]},"references":[]},"extra":true}}"#,
    ) else {
        panic!()
    };
    assert_eq!(
        result.result.unwrap(),
        WireValue::inline(json!({"type":"dict","items":["x",6]}), vec![])
    );
    for line in [
        r#"{"method":"register_group","params":{"execution_id":"E1","group_id":0,"name":"fan-out"}}"#,
        r#"{"method":"define_metric","params":{"execution_id":"E1","key":"progress","definition":{"throttle":10}}}"#,
        r#"{"method":"metric","params":{"execution_id":"E1","key":"progress","value":1.0}}"#,
        r#"{"method":"checkpoint_update","params":{"execution_id":"E1","set":{"cursor":{"type":"inline","format":"json","value":1,"references":[]}}}}"#,
        r#"{"method":"stream_ack","params":{"execution_id":"E3","subscription_id":0,"count":4,"sequence":3}}"#,
    ] {
        notification(line);
    }
}

#[test]
fn parses_adapter_requests() {
    let (id, AdapterRequest::SubmitExecution(submit)) = request(
        r#"{"id":1,"method":"submit_execution","params":{"execution_id":"E1","module":"myflows","target":"add","arguments":[{"type":"inline","format":"json","value":5,"references":[]},{"type":"inline","format":"json","value":1,"references":[]}],"type":"task","cache":{"params":true},"retries":{"limit":2},"group_id":0}}"#,
    ) else {
        panic!()
    };
    assert_eq!(id, 1);
    assert_eq!(submit.kind, Some(TargetKind::Task));
    assert_eq!(submit.group_id, Some(0));
    let options = StepOptions::from(submit.options);
    assert_eq!(options.cache.unwrap().params, ParamSelection::All(true));
    assert_eq!(options.retries.unwrap().limit, Some(2));

    let (_, AdapterRequest::Select(select)) = request(
        r#"{"id":2,"method":"select","params":{"execution_id":"E1","handles":[{"type":"execution","id":"E2"}],"suspend":true}}"#,
    ) else {
        panic!()
    };
    assert_eq!(select.handles, vec![Handle::execution("E2")]);
    assert!(select.suspend && !select.cancel_remaining && select.timeout_ms.is_none());

    let (_, AdapterRequest::PersistAsset(persist)) = request(
        r#"{"id":1,"method":"persist_asset","params":{"execution_id":"E8","paths":{"out.txt":"/tmp/x/out.txt"},"metadata":{"name":"report"}}}"#,
    ) else {
        panic!()
    };
    assert_eq!(persist.rest["metadata"], json!({"name": "report"}));
    let (_, AdapterRequest::DownloadBlob(download)) = request(
        r#"{"id":16,"method":"download_blob","params":{"execution_id":"E1","blob_key":"2d5eebd0","target_path":"/r/out.txt"}}"#,
    ) else {
        panic!()
    };
    assert_eq!(download.blob_key, "2d5eebd0");
}

#[test]
fn unknown_methods_and_bad_params_are_reported_not_fatal() {
    assert_eq!(
        parse_adapter_line("hello from print()"),
        Err(LineError::NotJson)
    );
    assert_eq!(parse_adapter_line("[1,2]"), Err(LineError::NotJson));
    assert_eq!(parse_adapter_line(r#"{"x":1}"#), Err(LineError::NotMessage));
    let unknown = parse_adapter_line(r#"{"id":7,"method":"teleport","params":{}}"#).unwrap_err();
    assert_eq!(unknown.request_id(), Some(7));
    let response = unknown.response().unwrap();
    assert_eq!(
        response.to_line(),
        r#"{"error":{"code":"unknown_method","message":"unknown method 'teleport'"},"id":7,"result":null}"#
    );
    let bad =
        parse_adapter_line(r#"{"id":3,"method":"select","params":{"handles":5}}"#).unwrap_err();
    assert_eq!(bad.code(), "parse_error");
    assert!(matches!(
        parse_adapter_line(r#"{"method":"warp","params":{}}"#),
        Err(LineError::UnknownMethod { id: None, .. })
    ));
}

#[test]
fn worker_lines_round_trip() {
    let execute = WorkerNotification::Execute(Execute {
        execution_id: "R1:1:1".into(),
        module: "myflows".into(),
        target: "main".into(),
        arguments: vec![WireValue::inline(json!(5), vec![])],
        working_dir: Some("/tmp/coflux-exec-1".into()),
        streams: None,
        checkpoints: None,
    });
    let line = execute.to_line();
    assert_eq!(
        line,
        r#"{"method":"execute","params":{"arguments":[{"format":"json","references":[],"type":"inline","value":5}],"execution_id":"R1:1:1","module":"myflows","target":"main","working_dir":"/tmp/coflux-exec-1"}}"#
    );
    assert_eq!(
        parse_worker_line(&line),
        Ok(FromWorker::Notification(execute))
    );

    let ok = r#"{"id":2,"result":{"status":"ok","value":{"type":"inline","format":"json","value":6,"references":[]},"winner":0}}"#;
    let Ok(FromWorker::Response(response)) = parse_worker_line(ok) else {
        panic!()
    };
    let result: SelectResult = serde_json::from_value(response.result.unwrap()).unwrap();
    assert_eq!((result.winner, result.status), (0, SelectStatus::Ok));
    let null = parse_worker_line(r#"{"id":3,"result":null}"#).unwrap();
    assert_eq!(
        null,
        FromWorker::Response(Response {
            id: 3,
            result: Ok(json!(null))
        })
    );
    let error = parse_worker_line(
        r#"{"id":4,"result":null,"error":{"code":"not_supported","message":"no"}}"#,
    )
    .unwrap();
    assert!(
        matches!(error, FromWorker::Response(Response { id: 4, result: Err(e) }) if e.code == "not_supported")
    );

    let ready = AdapterNotification::Ready(Ready {
        version: PROTOCOL_VERSION.into(),
        concurrent: true,
        push_results: false,
    });
    assert_eq!(
        ready.to_line(),
        r#"{"method":"ready","params":{"concurrent":true,"version":"0.12"}}"#
    );
    let select = AdapterRequest::Select(Select {
        execution_id: "R1:1:1".into(),
        handles: vec![Handle::execution("R1:2:1")],
        suspend: true,
        timeout_ms: None,
        cancel_remaining: false,
    });
    let (id, parsed) = request(&select.to_line(9));
    assert_eq!((id, parsed), (9, select));
}
