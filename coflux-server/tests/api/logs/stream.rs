//! Following a run's logs over server-sent events: backlog then live, filters, resuming,
//! and a follower that falls behind.

use super::*;

/// Reads server-sent events from a streaming body.
struct Events<B> {
    body: Pin<Box<B>>,
    buffer: String,
}

impl<B: MessageBody> Events<B> {
    fn new(body: B) -> Self {
        Self {
            body: Box::pin(body),
            buffer: String::new(),
        }
    }

    /// The next `data:` event as JSON (skipping comments), or `None` if none comes in time.
    async fn next(&mut self, wait: Duration) -> Option<Json> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data = event
                    .lines()
                    .find_map(|line| line.strip_prefix("data: "))
                    .map(|d| serde_json::from_str::<Json>(d).unwrap());
                if let Some(data) = data {
                    let id = event
                        .lines()
                        .find_map(|line| line.strip_prefix("id: "))
                        .unwrap();
                    assert_eq!(id, data["cursor"].to_string());
                    return Some(data);
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(
                deadline,
                futures::future::poll_fn(|cx| self.body.as_mut().poll_next(cx)),
            )
            .await
            .ok()?;
            let Ok(chunk) = chunk? else {
                panic!("the event stream failed");
            };
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

#[actix_web::test]
async fn the_stream_sends_the_backlog_then_live_logs_without_gaps_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .append("acme", (0..3).map(|n| record("R1:1:1", n)).collect())
        .unwrap();
    store.flush().await.unwrap();
    let app = test::init_service(app_with(store.clone())).await;
    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/api/projects/acme/runs/R1/logs/stream?after=1")
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    let mut events = Events::new(resp.into_body());
    let wait = Duration::from_secs(5);
    // The backlog after cursor 1.
    assert_eq!(events.next(wait).await.unwrap()["cursor"], 2);
    assert_eq!(events.next(wait).await.unwrap()["cursor"], 3);
    // Then appends made while (and after) it is connected, including another run's and another
    // project's, which must not show up.
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for n in 3..200u64 {
                store.append("acme", vec![record("R1:1:1", n)]).unwrap();
                store.append("acme", vec![record("R2:1:1", n)]).unwrap();
                store.append("other", vec![record("R1:1:1", n)]).unwrap();
                if n % 20 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        })
    };
    let mut ns = Vec::new();
    while ns.len() < 197 {
        let event = events.next(wait).await.expect("a live log");
        assert_eq!(event["execution_id"], "R1:1:1");
        ns.push(event["values"]["n"].as_u64().unwrap());
    }
    writer.join().unwrap();
    assert_eq!(ns, (3..200).collect::<Vec<_>>());
    assert!(events.next(Duration::from_millis(200)).await.is_none());
}

#[actix_web::test]
async fn the_stream_filters_by_execution_and_resumes_from_last_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for n in 0..6 {
        let e = if n % 2 == 0 { "R1:1:1" } else { "R1:1:2" };
        store.append("acme", vec![record(e, n)]).unwrap();
    }
    store.flush().await.unwrap();
    let app = test::init_service(app_with(store.clone())).await;
    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/api/projects/acme/runs/R1/logs/stream?execution=R1:1:2")
            .insert_header(("Last-Event-ID", "2"))
            .to_request(),
    )
    .await;
    let mut events = Events::new(resp.into_body());
    let wait = Duration::from_secs(5);
    assert_eq!(events.next(wait).await.unwrap()["values"]["n"], 3);
    assert_eq!(events.next(wait).await.unwrap()["values"]["n"], 5);
    store.append("acme", vec![record("R1:1:1", 6)]).unwrap();
    store.append("acme", vec![record("R1:1:2", 7)]).unwrap();
    assert_eq!(events.next(wait).await.unwrap()["values"]["n"], 7);

    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/api/projects/acme/runs/R1/logs/stream")
            .insert_header(("Last-Event-ID", "nope"))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 400);
}

#[actix_web::test]
async fn a_follower_that_falls_behind_re_reads_from_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let options = logs::LogStoreOptions {
        follower_buffer: 4,
        ..Default::default()
    };
    let store = LogStore::open_with(dir.path(), options).unwrap();
    let app = test::init_service(app_with(store.clone())).await;
    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/api/projects/acme/runs/R1/logs/stream")
            .to_request(),
    )
    .await;
    let mut events = Events::new(resp.into_body());
    // Let the stream read its (empty) backlog and start waiting for live logs.
    assert!(events.next(Duration::from_millis(100)).await.is_none());
    // Far more than the live buffer holds, before the follower reads any of it.
    for n in 0..50 {
        store.append("acme", vec![record("R1:1:1", n)]).unwrap();
    }
    store.flush().await.unwrap();
    let mut ns = Vec::new();
    while ns.len() < 50 {
        let event = events.next(Duration::from_secs(5)).await.expect("a log");
        ns.push(event["values"]["n"].as_u64().unwrap());
    }
    assert_eq!(ns, (0..50).collect::<Vec<_>>());
}
