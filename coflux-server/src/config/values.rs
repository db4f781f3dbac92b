//! Each setting's value checked and converted, and where it came from.

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use coflux_core::Tuning;

use super::{BlobStoreConfig, DAY, HOUR, MAX_SESSION_TIMEOUT, MIN_SESSION_TIMEOUT, S3Config};
use crate::auth::AuthMode;

/// Where the settings came from: which were taken from which config file.
#[derive(Default)]
pub(super) struct Origin {
    pub(super) path: PathBuf,
    pub(super) from_file: Vec<&'static str>,
}

impl Origin {
    /// `result`, its error naming the config file and `key` when the setting came from it.
    pub(super) fn check<T>(&self, key: &str, result: anyhow::Result<T>) -> anyhow::Result<T> {
        result.map_err(|e| {
            if self.from_file.contains(&key) {
                anyhow::anyhow!("invalid config file {}: {key}: {e}", self.path.display())
            } else {
                e
            }
        })
    }
}

/// `--database-url`: a PostgreSQL URL (empty: none).
pub(super) fn database_url(url: String) -> anyhow::Result<Option<String>> {
    if url.is_empty() {
        return Ok(None);
    }
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        anyhow::bail!("invalid database URL (expected postgres://user:password@host/database)");
    }
    Ok(Some(url))
}

/// `--advertise-url` (empty: none).
pub(super) fn advertise_url(url: String) -> anyhow::Result<Option<String>> {
    if url.is_empty() {
        return Ok(None);
    }
    parse_advertise_url(&url).map(Some)
}

/// `--lease-duration`.
pub(super) fn lease_duration(text: String) -> anyhow::Result<std::time::Duration> {
    parse_duration(&text)
        .filter(|d| LEASE_DURATIONS.contains(d))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "invalid lease duration '{text}' (expected a duration from 1s to 60s, \
                 such as 10s or 5000ms)"
            )
        })
}

/// `--durability`.
pub(super) fn durability(text: String) -> anyhow::Result<coflux_core::store::Durability> {
    match text.as_str() {
        "normal" => Ok(coflux_core::store::Durability::Normal),
        "full" => Ok(coflux_core::store::Durability::Full),
        other => anyhow::bail!("invalid durability '{other}' (expected 'normal' or 'full')"),
    }
}

/// `--session-timeout`.
pub(super) fn session_timeout(text: String) -> anyhow::Result<std::time::Duration> {
    parse_duration(&text)
        .filter(|d| (MIN_SESSION_TIMEOUT..=MAX_SESSION_TIMEOUT).contains(d))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "invalid session timeout '{text}' (expected a duration from 10s to 1h, \
                 such as 20, 45s or 2m)"
            )
        })
}

/// `--writer-spin-us`: at most [`Tuning::MAX_SPIN`]; 0 disables it.
pub(super) fn writer_spin(us: u64) -> anyhow::Result<std::time::Duration> {
    let spin = std::time::Duration::from_micros(us);
    if spin > Tuning::MAX_SPIN {
        let max = Tuning::MAX_SPIN.as_micros();
        anyhow::bail!("invalid writer spin {us} µs (at most {max}; 0 disables it)");
    }
    Ok(spin)
}

/// `--project-idle-timeout`: 0 keeps projects loaded.
pub(super) fn project_idle_timeout(text: String) -> anyhow::Result<Option<std::time::Duration>> {
    let timeout = parse_duration(&text).ok_or_else(|| {
        anyhow::anyhow!(
            "invalid project idle timeout '{text}' (expected a duration such as 300, \
             30s, 5m, 1h or 500ms; 0 keeps projects loaded)"
        )
    })?;
    Ok((!timeout.is_zero()).then_some(timeout))
}

/// `--auth`.
pub(super) fn auth(text: String) -> anyhow::Result<AuthMode> {
    AuthMode::parse(&text)
        .ok_or_else(|| anyhow::anyhow!("invalid auth mode '{text}' (expected 'none' or 'tokens')"))
}

/// `--admin-token-file`: its first line.
pub(super) fn read_admin_token(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the admin token file {}: {e}", path.display()))?;
    Ok(text.lines().next().unwrap_or_default().trim().to_owned())
}

/// A duration: a number of seconds, or a number followed by `ms`, `s`, `m` or `h` (at most
/// 30 days). `None` when it is not one.
pub(super) fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let n: u64 = number.parse().ok()?;
    let ms = match unit.trim() {
        "ms" => n,
        "" | "s" => n.checked_mul(1_000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    (ms <= 30 * 24 * 3_600_000).then(|| std::time::Duration::from_millis(ms))
}

/// `--log-retention-days`, `--run-retention-days`: 0 keeps them forever.
pub(super) fn retention(days: u64, what: &str) -> anyhow::Result<Option<std::time::Duration>> {
    if days == 0 {
        return Ok(None);
    }
    let days = u32::try_from(days)
        .ok()
        .filter(|d| *d <= 100 * 365)
        .ok_or_else(|| {
            anyhow::anyhow!("invalid {what} retention of {days} days (at most 36500)")
        })?;
    Ok(Some(DAY * days))
}

/// `--blob-gc-grace-hours`: 0 disables blob garbage collection.
pub(super) fn blob_gc_grace(hours: u64) -> anyhow::Result<Option<std::time::Duration>> {
    if hours == 0 {
        return Ok(None);
    }
    let hours = u32::try_from(hours)
        .ok()
        .filter(|h| *h <= 100 * 365 * 24)
        .ok_or_else(|| {
            anyhow::anyhow!("invalid blob GC grace of {hours} hours (at most 876000)")
        })?;
    Ok(Some(HOUR * hours))
}

/// `--blob-store` with the `--s3-*` settings.
pub(super) fn blob_store(kind: Option<&str>, s3: S3Config) -> anyhow::Result<BlobStoreConfig> {
    let s3_given = !s3.bucket.is_empty()
        || s3.endpoint.is_some()
        || s3.region.is_some()
        || !s3.prefix.is_empty();
    match kind.unwrap_or("local") {
        "local" if s3_given => {
            anyhow::bail!("the --s3-* settings need --blob-store s3")
        }
        "local" => Ok(BlobStoreConfig::Local),
        "s3" if s3.bucket.is_empty() => anyhow::bail!("--blob-store s3 needs --s3-bucket"),
        "s3" => Ok(BlobStoreConfig::S3(s3)),
        other => anyhow::bail!("invalid blob store '{other}' (expected 'local' or 's3')"),
    }
}

/// The default `--lease-duration`.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(10);
/// The lease durations accepted.
pub const LEASE_DURATIONS: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(60);

/// Checks an `--advertise-url`: `http(s)://host[:port]`, no path. Returns it without a
/// trailing slash.
pub fn parse_advertise_url(url: &str) -> anyhow::Result<String> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains('/') => Ok(url.to_owned()),
        _ => anyhow::bail!(
            "invalid advertise URL '{url}' (expected http://host:port or https://host:port, \
             without a path)"
        ),
    }
}
