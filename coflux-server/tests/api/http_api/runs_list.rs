//! `GET /api/projects/{p}/runs`: filters (status, workflow, environment, time range), each
//! row's status and duration, and cursor pagination while runs are being created.

use super::*;

/// The run ids of a list answer, in order.
fn ids(list: &Json) -> Vec<String> {
    list["runs"]
        .as_array()
        .unwrap_or_else(|| panic!("no runs in {list}"))
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_rt::test]
async fn runs_are_listed_with_filters_status_and_duration() {
    let h = Harness::new().await;
    let app = test::init_service(create_app(h.state.clone())).await;
    call!(&app, post("/api/projects", json!({"name": "acme"})));
    for env in ["production", "staging"] {
        call!(
            &app,
            post("/api/projects/acme/environments", json!({ "name": env }))
        );
    }
    let project = h.state.coflux.existing_project("acme").await.unwrap();
    let repository = Repository::new()
        .with(add)
        .with(sum)
        .with(explode)
        .with(slow);
    let _worker = project.serve("production", repository).await.unwrap();

    let submit = |env: &str, target: &str, arguments: Json| {
        post(
            &format!("/api/projects/acme/environments/{env}/runs"),
            json!({"module": "demo", "target": target, "arguments": arguments,
                   "allow_unregistered": true}),
        )
    };
    let mut finished = Vec::new();
    for (target, arguments) in [
        ("add", json!([1, 2])),
        ("explode", json!([])),
        ("add", json!([3, 4])),
        ("explode", json!([])),
        ("add", json!([5, 6])),
    ] {
        let (status, body) = call!(&app, submit("production", target, arguments));
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let run = body["run_id"].as_str().unwrap().to_owned();
        let uri = format!("/api/projects/acme/runs/{run}/result?wait=20");
        let (_, result) = call!(&app, get(&uri));
        assert_ne!(result["status"], "pending", "{result}");
        finished.push((target, run));
    }
    // No agent serves staging: its run stays queued.
    let (_, queued) = call!(&app, submit("staging", "add", json!([0, 0])));
    let queued = queued["run_id"].as_str().unwrap().to_owned();
    let (_, slow_run) = call!(&app, submit("production", "slow", json!([])));
    let slow_run = slow_run["run_id"].as_str().unwrap().to_owned();

    let list = |query: &str| get(&format!("/api/projects/acme/runs?{query}"));
    // The slow run is running once the worker has taken it.
    let mut running = Vec::new();
    for _ in 0..200 {
        running = ids(&call!(&app, list("status=running")).1);
        if !running.is_empty() {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(running, std::slice::from_ref(&slow_run));

    let (status, all) = call!(&app, list(""));
    assert_eq!(status, StatusCode::OK, "{all}");
    let newest_first: Vec<String> = [slow_run.clone(), queued.clone()]
        .into_iter()
        .chain(finished.iter().rev().map(|(_, r)| r.clone()))
        .collect();
    assert_eq!(ids(&all), newest_first);
    assert_eq!(all["next_cursor"], Json::Null);
    for row in all["runs"].as_array().unwrap() {
        let (status, run) = (
            row["status"].as_str().unwrap(),
            row["run_id"].as_str().unwrap(),
        );
        let done = !matches!(status, "queued" | "running");
        assert_eq!(row["finished_at"].is_i64(), done, "{row}");
        assert_eq!(row["duration_ms"].is_i64(), done, "{row}");
        if done {
            let duration = row["duration_ms"].as_i64().unwrap();
            let span = row["finished_at"].as_i64().unwrap() - row["created_at"].as_i64().unwrap();
            assert_eq!(duration, span, "{row}");
            assert!(duration >= 0, "{row}");
        }
        let expected = if run == slow_run {
            "running"
        } else if run == queued {
            "queued"
        } else if finished.iter().any(|(t, r)| r == run && *t == "add") {
            "value"
        } else {
            "error"
        };
        assert_eq!(status, expected, "{row}");
    }

    let of = |target: &str| -> Vec<String> {
        finished
            .iter()
            .rev()
            .filter(|(t, _)| *t == target)
            .map(|(_, r)| r.clone())
            .collect()
    };
    assert_eq!(ids(&call!(&app, list("status=value")).1), of("add"));
    assert_eq!(ids(&call!(&app, list("status=error")).1), of("explode"));
    assert_eq!(
        ids(&call!(&app, list("status=queued")).1),
        std::slice::from_ref(&queued)
    );
    assert_eq!(
        ids(&call!(&app, list("status=cancelled")).1),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&call!(&app, list("workflow=demo%2Fexplode")).1),
        of("explode")
    );
    assert_eq!(
        ids(&call!(&app, list("workflow=demo/add&environment=staging")).1),
        std::slice::from_ref(&queued)
    );
    assert_eq!(
        ids(&call!(&app, list("environment=production&status=value&limit=2")).1),
        of("add")[..2]
    );

    // Time range: since is inclusive, until exclusive (Unix ms or RFC 3339).
    let created: Vec<(String, i64)> = all["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["run_id"].as_str().unwrap().to_owned(),
                r["created_at"].as_i64().unwrap(),
            )
        })
        .collect();
    let pivot = created[3].1;
    let since: Vec<String> = created
        .iter()
        .filter(|(_, t)| *t >= pivot)
        .map(|(r, _)| r.clone())
        .collect();
    let until: Vec<String> = created
        .iter()
        .filter(|(_, t)| *t < pivot)
        .map(|(r, _)| r.clone())
        .collect();
    assert_eq!(ids(&call!(&app, list(&format!("since={pivot}"))).1), since);
    assert_eq!(ids(&call!(&app, list(&format!("until={pivot}"))).1), until);
    let future = call!(&app, list("since=2999-01-01T00:00:00Z")).1;
    assert_eq!(ids(&future), Vec::<String>::new());
    let past = call!(&app, list("since=2000-01-01T00:00:00%2B02:00")).1;
    assert_eq!(ids(&past), newest_first);

    // Bad input names the parameter.
    for (query, code) in [
        ("status=done", "invalid_status"),
        ("workflow=add", "invalid_workflow"),
        ("since=yesterday", "invalid_since"),
        ("until=noon", "invalid_until"),
        ("cursor=R3", "invalid_cursor"),
        ("cursor=rc1_zz", "invalid_cursor"),
        ("limit=lots", "invalid_query"),
        ("sort=asc", "invalid_query"),
    ] {
        let got = call!(&app, list(query));
        assert_error(&h, &got, StatusCode::BAD_REQUEST, code);
    }
    let done = call!(&app, list("status=done")).1;
    assert!(
        done["error"]["message"].as_str().unwrap().contains("value"),
        "the message lists the statuses: {done}"
    );
    let ghost = call!(&app, list("environment=ghost"));
    assert_error(&h, &ghost, StatusCode::NOT_FOUND, "environment_not_found");
    let no_project = call!(&app, get("/api/projects/nowhere/runs"));
    assert_error(&h, &no_project, StatusCode::NOT_FOUND, "project_not_found");

    project.cancel(format!("{slow_run}:1:1").parse().unwrap());
}

#[actix_rt::test]
async fn cursor_pages_neither_repeat_nor_skip_while_runs_are_created() {
    let h = Harness::new().await;
    let app = test::init_service(create_app(h.state.clone())).await;
    create_environment!(&app, "acme", "production");
    let submit = || {
        post(
            "/api/projects/acme/environments/production/runs",
            json!({"module": "m", "target": "w", "allow_unregistered": true}),
        )
    };
    let mut created = Vec::new();
    for _ in 0..7 {
        let (status, body) = call!(&app, submit());
        assert_eq!(status, StatusCode::CREATED, "{body}");
        created.push(body["run_id"].as_str().unwrap().to_owned());
    }
    created.reverse();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let uri = match &cursor {
            Some(c) => format!("/api/projects/acme/runs?limit=3&cursor={c}"),
            None => "/api/projects/acme/runs?limit=3".to_owned(),
        };
        let (status, page) = call!(&app, get(&uri));
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(ids(&page).len() <= 3, "{page}");
        seen.extend(ids(&page));
        pages += 1;
        // New runs arrive between pages; they are newer than every page still to come.
        for _ in 0..2 {
            call!(&app, submit());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(seen, created, "every run once, newest first");
    assert_eq!(pages, 3);

    // The limit is capped, not refused.
    let (status, big) = call!(&app, get("/api/projects/acme/runs?limit=100000"));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&big).len(), 13);
}
