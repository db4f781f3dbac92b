//! Tests of [`super`]: flags, environment, the config file and their checks.

use super::*;

fn parse(args: &[&str]) -> anyhow::Result<ServerConfig> {
    let mut argv = vec!["coflux-server"];
    argv.extend_from_slice(args);
    ServerConfig::from_args(ServerArgs::try_parse_from(argv)?)
}

#[test]
fn the_project_idle_timeout_takes_a_duration() {
    let timeout = |args: &[&str]| parse(args).map(|c| c.project_idle_timeout);
    let secs = |s| Some(std::time::Duration::from_secs(s));
    assert_eq!(timeout(&[]).unwrap(), secs(300));
    assert_eq!(
        timeout(&["--project-idle-timeout", "30s"]).unwrap(),
        secs(30)
    );
    assert_eq!(
        timeout(&["--project-idle-timeout", "5m"]).unwrap(),
        secs(300)
    );
    assert_eq!(
        timeout(&["--project-idle-timeout", "45"]).unwrap(),
        secs(45)
    );
    assert_eq!(
        timeout(&["--project-idle-timeout", "250ms"]).unwrap(),
        Some(std::time::Duration::from_millis(250))
    );
    assert_eq!(timeout(&["--project-idle-timeout", "0"]).unwrap(), None);
    for bad in ["5 minutes", "-1s", "1d", "", "99999h"] {
        let flag = format!("--project-idle-timeout={bad}");
        let error = timeout(&[&flag]).unwrap_err();
        assert!(
            error.to_string().contains("project idle timeout"),
            "{bad}: {error}"
        );
    }
}

#[test]
fn the_writer_spin_is_configured_and_bounded() {
    let spin = |args: &[&str]| parse(args).map(|c| c.tuning.writer_spin);
    assert_eq!(
        spin(&["--writer-spin-us", "0"]).unwrap(),
        std::time::Duration::ZERO
    );
    assert_eq!(
        spin(&["--writer-spin-us", "400"]).unwrap(),
        std::time::Duration::from_micros(400)
    );
    let error = spin(&["--writer-spin-us", "20000"])
        .unwrap_err()
        .to_string();
    assert!(error.contains("writer spin"), "{error}");
    assert!(spin(&["--writer-spin-us", "fast"]).is_err());
}

#[test]
fn blob_store_and_retention_are_configured() {
    // Only flags are given, so the environment does not matter unless it sets these.
    let config = parse(&[
        "--blob-store",
        "s3",
        "--s3-bucket",
        "b",
        "--s3-endpoint",
        "http://127.0.0.1:9",
        "--s3-prefix",
        "coflux/blobs",
        "--s3-allow-http",
        "--log-retention-days",
        "7",
    ])
    .unwrap();
    let BlobStoreConfig::S3(s3) = &config.blob_store else {
        panic!("{:?}", config.blob_store);
    };
    assert_eq!(s3.bucket, "b");
    assert_eq!(s3.prefix, "coflux/blobs");
    assert!(s3.allow_http);
    assert_eq!(config.log_retention, Some(DAY * 7));
    let forever = parse(&["--blob-store", "local", "--log-retention-days", "0"]).unwrap();
    assert!(matches!(forever.blob_store, BlobStoreConfig::Local));
    assert_eq!(forever.log_retention, None);
    assert_eq!(
        forever.run_retention, None,
        "runs are kept forever by default"
    );
    assert_eq!(
        parse(&["--run-retention-days", "14"])
            .unwrap()
            .run_retention,
        Some(DAY * 14)
    );
    assert_eq!(
        parse(&["--run-retention-days", "0"]).unwrap().run_retention,
        None
    );
    let error = parse(&["--run-retention-days", "99999"]).unwrap_err();
    assert!(error.to_string().contains("run retention"), "{error}");
    let with_postgres = parse(&[
        "--run-retention-days",
        "7",
        "--database-url",
        "postgres://u@localhost/db",
    ])
    .unwrap();
    assert_eq!(with_postgres.run_retention, Some(DAY * 7));
    assert!(
        parse(&["--blob-store", "s3"]).is_err(),
        "a bucket is required"
    );
    assert!(parse(&["--blob-store", "gcs"]).is_err());
    assert_eq!(
        parse(&["--blob-gc-grace-hours", "2"])
            .unwrap()
            .blob_gc_grace,
        Some(HOUR * 2)
    );
    assert_eq!(
        parse(&["--blob-gc-grace-hours", "0"])
            .unwrap()
            .blob_gc_grace,
        None
    );
    assert!(parse(&["--blob-gc-grace-hours", "9999999"]).is_err());
    assert!(parse(&["--blob-store", "local", "--s3-bucket", "b"]).is_err());
}

#[test]
fn auth_is_required_beyond_loopback() {
    assert_eq!(parse(&[]).unwrap().auth, AuthMode::None);
    let open = parse(&["--host", "0.0.0.0", "--auth", "none"]).unwrap_err();
    assert!(open.to_string().contains("--auth tokens"), "{open}");
    let no_admin = parse(&["--host", "0.0.0.0"]).unwrap_err();
    assert!(
        no_admin.to_string().contains("COFLUX_ADMIN_TOKEN"),
        "{no_admin}"
    );
    let short = parse(&["--auth", "tokens", "--admin-token", "short"]).unwrap_err();
    assert!(short.to_string().contains("too short"), "{short}");
    let config = parse(&["--host", "0.0.0.0", "--admin-token", "0123456789abcdef"]).unwrap();
    assert_eq!(config.auth, AuthMode::Tokens);
    assert!(
        !format!("{config:?}").contains("0123456789abcdef"),
        "never printed"
    );
    assert!(parse(&["--auth", "maybe"]).is_err());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin");
    std::fs::write(&file, "fedcba9876543210\n").unwrap();
    let config = parse(&[
        "--auth",
        "tokens",
        "--admin-token-file",
        file.to_str().unwrap(),
    ])
    .unwrap();
    assert_eq!(config.admin_token.as_deref(), Some("fedcba9876543210"));
}

#[test]
fn settings_come_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("coflux.toml");
    std::fs::write(
        &file,
        "blob_store = \"s3\"\ns3_bucket = \"x\"\ns3_region = \"eu-west-1\"\n\
         log_retention_days = 2\nblob_gc_grace_hours = 48\nsession_timeout = \"30s\"\n\
         run_retention_days = 9\n",
    )
    .unwrap();
    let config = parse(&[
        "--config",
        file.to_str().unwrap(),
        "--log-retention-days",
        "3",
    ])
    .unwrap();
    let BlobStoreConfig::S3(s3) = &config.blob_store else {
        panic!("{:?}", config.blob_store);
    };
    assert_eq!(
        (s3.bucket.as_str(), s3.region.as_deref()),
        ("x", Some("eu-west-1"))
    );
    assert_eq!(
        config.log_retention,
        Some(DAY * 3),
        "flags win over the file"
    );
    assert_eq!(config.blob_gc_grace, Some(HOUR * 48));
    assert_eq!(config.run_retention, Some(DAY * 9));
    assert_eq!(config.session_timeout, std::time::Duration::from_secs(30));
}

#[test]
fn the_session_timeout_is_configured_and_bounded() {
    let timeout = |args: &[&str]| parse(args).map(|c| c.session_timeout);
    assert_eq!(timeout(&[]).unwrap(), DEFAULT_SESSION_TIMEOUT);
    assert_eq!(
        timeout(&["--session-timeout", "45s"]).unwrap(),
        std::time::Duration::from_secs(45)
    );
    assert_eq!(
        timeout(&["--session-timeout", "2m"]).unwrap(),
        std::time::Duration::from_secs(120)
    );
    // Shorter than two pings, longer than an hour, or not a duration.
    for bad in ["5", "9s", "2h", "soon", ""] {
        let flag = format!("--session-timeout={bad}");
        let error = timeout(&[&flag]).unwrap_err().to_string();
        assert!(error.contains("session timeout"), "{bad}: {error}");
    }
}

#[test]
fn cluster_flags_name_the_node_and_bound_the_lease() {
    let db = ["--database-url", "postgres://u:p@db/coflux"];
    let config = parse(&db).unwrap();
    assert_eq!(config.lease_duration, std::time::Duration::from_secs(10));
    assert_eq!(config.node_url().unwrap(), "http://127.0.0.1:7777");
    let config = parse(&[&db[..], &["--advertise-url", "http://10.0.0.5:7777/"]].concat()).unwrap();
    assert_eq!(config.node_url().unwrap(), "http://10.0.0.5:7777");
    let config = parse(&[&db[..], &["--lease-duration", "2500ms"]].concat()).unwrap();
    assert_eq!(
        config.lease_duration,
        std::time::Duration::from_millis(2500)
    );
    for bad in ["0s", "500ms", "2m", "soon"] {
        let error = parse(&[&db[..], &["--lease-duration", bad]].concat()).unwrap_err();
        assert!(
            error.to_string().contains("lease duration"),
            "{bad}: {error}"
        );
    }
    let error = parse(&["--advertise-url", "http://10.0.0.5:7777"]).unwrap_err();
    assert!(
        error.to_string().contains("needs --database-url"),
        "{error}"
    );
    let error = parse(&[&db[..], &["--advertise-url", "10.0.0.5:7777"]].concat()).unwrap_err();
    assert!(
        error.to_string().contains("invalid advertise URL"),
        "{error}"
    );
    // Listening on every address: other nodes need to be told where this one is.
    let mut config = parse(&db).unwrap();
    config.host = "0.0.0.0".into();
    let error = config.node_url().unwrap_err();
    assert!(error.to_string().contains("--advertise-url"), "{error}");
}

#[test]
fn a_bad_config_file_is_named_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("coflux.toml");
    let path = file.to_str().unwrap();
    for (text, key) in [
        ("port = \"x\"\n", "port"),
        ("prot = 7000\n", "prot"),
        ("session_timeout = \"soon\"\n", "session_timeout"),
        ("writer_spin_us = 20000\n", "writer_spin_us"),
        ("admin_token = \"0123456789abcdef\"\n", "admin_token"),
    ] {
        std::fs::write(&file, text).unwrap();
        let error = parse(&["--config", path]).unwrap_err().to_string();
        assert!(
            error.contains(path) && error.contains(key),
            "{text}: {error}"
        );
    }
    // The same bad value given as a flag is not blamed on the file.
    std::fs::write(&file, "port = 7000\n").unwrap();
    let error = parse(&["--config", path, "--session-timeout", "soon"])
        .unwrap_err()
        .to_string();
    assert!(!error.contains(path), "{error}");
    assert!(error.contains("session timeout"), "{error}");
    // A flag wins over a bad value in the file.
    std::fs::write(&file, "session_timeout = \"soon\"\n").unwrap();
    let config = parse(&["--config", path, "--session-timeout", "30s"]).unwrap();
    assert_eq!(config.session_timeout, std::time::Duration::from_secs(30));
}

#[test]
fn every_setting_but_the_admin_token_is_a_file_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("coflux.toml");
    std::fs::write(
        &file,
        "data_dir = \"/srv/coflux\"\nport = 7001\nhost = \"127.0.0.2\"\ndurability = \"full\"\n\
         reconnect_timeout = 5\nwriter_spin_us = 0\nproject_idle_timeout = \"0\"\n\
         database_url = \"postgres://u@db/c\"\nlease_duration = \"5s\"\n",
    )
    .unwrap();
    let config = parse(&["--config", file.to_str().unwrap()]).unwrap();
    assert_eq!(config.data_dir, PathBuf::from("/srv/coflux"));
    assert_eq!((config.host.as_str(), config.port), ("127.0.0.2", 7001));
    assert!(matches!(
        config.durability,
        coflux_core::store::Durability::Full
    ));
    assert_eq!(config.reconnect_timeout, std::time::Duration::from_secs(5));
    assert_eq!(config.tuning.writer_spin, std::time::Duration::ZERO);
    assert_eq!(config.project_idle_timeout, None);
    assert_eq!(config.database_url.as_deref(), Some("postgres://u@db/c"));
    assert_eq!(config.lease_duration, std::time::Duration::from_secs(5));
}

#[test]
fn the_server_spins_as_its_tuning_says() {
    let config = parse(&[]).unwrap();
    assert_eq!(config.tuning, coflux_core::Tuning::server());
    assert_eq!(ServerConfig::new("d").tuning, coflux_core::Tuning::server());
}
