//! `coflux.toml`: defaults for the `coflux` CLI and `coflux-agent` (server, project,
//! environment, token), found in the current directory or the nearest parent holding one.
//! Flags and `COFLUX_*` environment variables win over it.
//!
//! Keys: `server` (a URL), `project`, `environment`, `token`. The Coflux CLI's `host`
//! (`host[:port]`, meaning `http://host[:port]`) and `workspace` are read as `server` and
//! `environment`; other keys and tables (such as `[worker]`) are ignored.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The file's name.
pub const FILE_NAME: &str = "coflux.toml";

/// A `coflux.toml` that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// The settings of a `coflux.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct FileConfig {
    /// The server's URL.
    #[serde(default)]
    pub server: Option<String>,
    /// `host[:port]` (Coflux's key): the server at `http://host[:port]`.
    #[serde(default)]
    pub host: Option<String>,
    /// The project.
    #[serde(default)]
    pub project: Option<String>,
    /// The environment.
    #[serde(default)]
    pub environment: Option<String>,
    /// The environment (Coflux's key).
    #[serde(default)]
    pub workspace: Option<String>,
    /// The access token.
    #[serde(default)]
    pub token: Option<String>,
}

impl FileConfig {
    /// The nearest `coflux.toml` from the current directory up, parsed; none if there is none.
    pub fn load() -> Result<Option<(PathBuf, Self)>, ConfigError> {
        match std::env::current_dir() {
            Ok(dir) => Self::find(&dir),
            Err(_) => Ok(None),
        }
    }

    /// The nearest `coflux.toml` in `dir` or its parents, parsed.
    pub fn find(dir: &Path) -> Result<Option<(PathBuf, Self)>, ConfigError> {
        for dir in dir.ancestors() {
            let path = dir.join(FILE_NAME);
            if path.is_file() {
                return Self::read(&path).map(|config| Some((path, config)));
            }
        }
        Ok(None)
    }

    /// Reads and parses one file.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let error = |message: String| ConfigError {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        toml::from_str(&text).map_err(|e| error(e.message().to_owned()))
    }

    /// The server URL: `server`, else `http://` + `host`.
    pub fn server_url(&self) -> Option<String> {
        self.server.clone().or_else(|| {
            self.host.as_ref().map(|host| {
                if host.contains("://") {
                    host.clone()
                } else {
                    format!("http://{host}")
                }
            })
        })
    }

    /// The environment: `environment`, else `workspace`.
    pub fn environment_name(&self) -> Option<String> {
        self.environment.clone().or_else(|| self.workspace.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_file_is_read_with_coflux_keys() {
        let root = tempfile::tempdir().unwrap();
        let nested = root.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        assert_eq!(FileConfig::find(&nested).unwrap(), None);
        std::fs::write(
            root.path().join(FILE_NAME),
            "host = \"localhost:7070\"\nproject = \"acme\"\nworkspace = \"dev\"\n[worker]\nconcurrency = 2\n",
        )
        .unwrap();
        let (path, config) = FileConfig::find(&nested).unwrap().unwrap();
        assert_eq!(path, root.path().join(FILE_NAME));
        assert_eq!(
            config.server_url().as_deref(),
            Some("http://localhost:7070")
        );
        assert_eq!(config.project.as_deref(), Some("acme"));
        assert_eq!(config.environment_name().as_deref(), Some("dev"));
        std::fs::write(nested.join(FILE_NAME), "project = [").unwrap();
        let err = FileConfig::find(&nested).unwrap_err().to_string();
        assert!(
            err.starts_with(&nested.join(FILE_NAME).display().to_string()),
            "{err}"
        );
    }
}
