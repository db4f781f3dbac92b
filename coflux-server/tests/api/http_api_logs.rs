//! The logs page route answers with every record appended before the request, committed or
//! still queued: an agent sends an execution's logs before its result, so a client that has
//! seen the result reads all of them.

use std::collections::BTreeMap;

use actix_web::{App, test, web};
use coflux_core::model::Value;
use coflux_server::logs::{self, LogRecord, LogStore};
use serde_json::{Value as Json, json};

fn record(n: u64) -> LogRecord {
    let mut values = BTreeMap::new();
    values.insert("n".to_owned(), Value::raw(json!(n)));
    LogRecord {
        execution: "R1:1:1".parse().unwrap(),
        timestamp_ms: 1_000 + n,
        level: 2,
        template: Some("line {n}".into()),
        values,
    }
}

#[actix_web::test]
async fn a_page_includes_records_queued_just_before_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).unwrap();
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(store.clone()))
            .app_data(web::Data::new(coflux_server::auth::Auth::none()))
            .configure(logs::configure),
    )
    .await;
    for round in 0..5u64 {
        // Many small appends, as an agent sends them (one frame per message).
        for n in 0..300 {
            store.append("acme", vec![record(round * 300 + n)]).unwrap();
        }
        let req = test::TestRequest::get()
            .uri("/api/projects/acme/runs/R1/logs?limit=1000&after=0")
            .to_request();
        let page: Json = test::call_and_read_body_json(&app, req).await;
        let logs = page["logs"].as_array().unwrap();
        let expected = ((round + 1) * 300).min(1000) as usize;
        assert_eq!(logs.len(), expected, "round {round}");
        let last = logs.last().unwrap();
        assert_eq!(
            last["values"]["n"],
            json!(expected as u64 - 1),
            "round {round}"
        );
    }
}
