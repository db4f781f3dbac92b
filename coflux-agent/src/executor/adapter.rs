//! Which command runs the executors of a project: an explicit argv, or one detected from the
//! project directory the way the Coflux CLI does.

use std::path::Path;

/// The argv prefix that runs the adapter (`discover ...` or `execute` is appended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterCommand(pub Vec<String>);

impl AdapterCommand {
    /// An explicit command, e.g. from `--adapter` (comma-separated in Coflux's CLI).
    pub fn new(argv: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self(argv.into_iter().map(Into::into).collect())
    }

    /// The explicit command if given, else the one detected in `dir`.
    pub fn resolve(explicit: Option<Vec<String>>, dir: &Path) -> Self {
        match explicit {
            Some(argv) if !argv.is_empty() => Self(argv),
            _ => Self::detect(dir),
        }
    }

    /// Detects the Python adapter for a project directory, most specific first:
    /// `.venv/bin/python`, `venv/bin/python`, `poetry run` (with `poetry.lock`), `uv run`
    /// (with `uv.lock`), else `python3`; each followed by `-m coflux`.
    pub fn detect(dir: &Path) -> Self {
        let python_module = |python: &str| vec![python.to_owned(), "-m".into(), "coflux".into()];
        for venv in [".venv", "venv"] {
            let python = dir.join(venv).join("bin").join("python");
            if python.exists() {
                return Self(python_module(&python.to_string_lossy()));
            }
        }
        let mut argv = if dir.join("poetry.lock").exists() {
            vec!["poetry".to_owned(), "run".into()]
        } else if dir.join("uv.lock").exists() {
            vec!["uv".to_owned(), "run".into()]
        } else {
            Vec::new()
        };
        let python = if argv.is_empty() { "python3" } else { "python" };
        argv.extend(python_module(python));
        Self(argv)
    }

    /// The program (the first item), if any.
    pub fn program(&self) -> Option<&str> {
        self.0.first().map(String::as_str)
    }

    /// A process for `args` appended to the command, run in `dir`, with piped stdio.
    pub(crate) fn command(&self, dir: &Path, args: &[&str]) -> Option<tokio::process::Command> {
        let (program, prefix) = self.0.split_first()?;
        let mut command = tokio::process::Command::new(program);
        command
            .args(prefix)
            .args(args)
            .current_dir(dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        Some(command)
    }
}

impl std::fmt::Display for AdapterCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_follows_the_coflux_cli_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        assert_eq!(AdapterCommand::detect(path).0, ["python3", "-m", "coflux"]);
        std::fs::write(path.join("uv.lock"), "").unwrap();
        assert_eq!(
            AdapterCommand::detect(path).0,
            ["uv", "run", "python", "-m", "coflux"]
        );
        std::fs::write(path.join("poetry.lock"), "").unwrap();
        assert_eq!(
            AdapterCommand::detect(path).0,
            ["poetry", "run", "python", "-m", "coflux"]
        );
        std::fs::create_dir_all(path.join("venv/bin")).unwrap();
        std::fs::write(path.join("venv/bin/python"), "").unwrap();
        assert!(AdapterCommand::detect(path).0[0].ends_with("venv/bin/python"));
        std::fs::create_dir_all(path.join(".venv/bin")).unwrap();
        std::fs::write(path.join(".venv/bin/python"), "").unwrap();
        assert!(AdapterCommand::detect(path).0[0].ends_with(".venv/bin/python"));
        let explicit = AdapterCommand::resolve(Some(vec!["./repo".into()]), path);
        assert_eq!(explicit.0, ["./repo"]);
    }
}
