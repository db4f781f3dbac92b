//! The server's JSON API, agent protocol, auth, blobs and logs, driven through `create_app`
//! as `main` builds it (and S3 through a local moto server).

#[path = "../support/mod.rs"]
mod support;

#[macro_use]
mod blob_gc_fixture;

mod agent_protocol;
mod assets;
mod auth;
mod blob_gc;
mod blob_gc_postgres;
mod blobs_large;
mod blobs_s3;
mod http_api;
mod http_api_environments;
mod http_api_logs;
mod logs;
mod logs_postgres;
mod views_and_registration;
