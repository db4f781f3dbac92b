//! [`Watcher`]: recursive file watching for `--dev`, with ignore rules and debouncing.
//!
//! Built on `notify` with `notify-debouncer-full` (which pairs renames and merges the events of
//! one path). On top of it, changes are gathered into one [`ChangeBatch`] until no relevant
//! change has been seen for [`WatchOptions::debounce`], so a burst of writes (a save of many
//! files, a `git checkout`) gives one batch and one restart.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc;

/// Directory names and file-name patterns ignored by default: build output, VCS data, Python
/// caches and virtual environments, and editor swap, backup and lock files.
pub const DEFAULT_IGNORE: &[&str] = &[
    "target/",
    ".git/",
    ".hg/",
    "__pycache__/",
    ".venv/",
    "venv/",
    "node_modules/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".idea/",
    "*.pyc",
    "*.pyo",
    "*.swp",
    "*.swo",
    "*.swx",
    "*~",
    ".#*",
    "#*#",
    "4913",
    "*.tmp",
    ".DS_Store",
];

/// How a [`Watcher`] filters and groups changes.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// A batch is emitted once no relevant change has been seen for this long (default
    /// 200 ms).
    pub debounce: Duration,
    /// Ignore patterns, matched against every component of a path below its watched root:
    /// `name/` or `name` matches that directory or file name anywhere, and `*` / `?` are
    /// wildcards within one component (`*.pyc`, `.#*`). Default: [`DEFAULT_IGNORE`].
    pub ignore: Vec<String>,
    /// Files ignored by exact path (e.g. the agent's own log when it is written below a
    /// watched root: each line it logs about a reload would otherwise start another).
    pub ignore_files: Vec<PathBuf>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(200),
            ignore: DEFAULT_IGNORE.iter().map(|p| (*p).to_owned()).collect(),
            ignore_files: Vec::new(),
        }
    }
}

/// A group of changes: something under a watched root was created, modified, renamed or
/// removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeBatch {
    /// The changed paths, sorted and without duplicates.
    pub paths: Vec<PathBuf>,
    /// Events may have been lost (the kernel queue overflowed): treat everything as changed.
    pub rescan: bool,
}

/// Why watching failed.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The kernel's limit on watches was reached, so some directories are not watched.
    #[error(
        "too many watched directories (raise fs.inotify.max_user_watches, or ignore large directories){}",
        fmt_paths(.paths)
    )]
    WatchLimit {
        /// The paths concerned, if known.
        paths: Vec<PathBuf>,
    },
    /// A root to watch does not exist.
    #[error("cannot watch {}: no such file or directory", .0.display())]
    RootNotFound(PathBuf),
    /// Any other failure of the watcher.
    #[error("file watching failed: {message}{}", fmt_paths(.paths))]
    Failed {
        /// What went wrong.
        message: String,
        /// The paths concerned, if known.
        paths: Vec<PathBuf>,
    },
}

fn fmt_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        format!(" ({})", list.join(", "))
    }
}

impl WatchError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::WatchLimit { .. } => "watch_limit",
            Self::RootNotFound(_) => "watch_root_not_found",
            Self::Failed { .. } => "watch_failed",
        }
    }
}

impl From<notify::Error> for WatchError {
    fn from(error: notify::Error) -> Self {
        match error.kind {
            notify::ErrorKind::MaxFilesWatch => Self::WatchLimit { paths: error.paths },
            notify::ErrorKind::Io(io) if io.raw_os_error() == Some(28) => {
                // ENOSPC from inotify_add_watch: the watch limit.
                Self::WatchLimit { paths: error.paths }
            }
            notify::ErrorKind::PathNotFound if error.paths.len() == 1 => {
                Self::RootNotFound(error.paths.into_iter().next().unwrap_or_default())
            }
            kind => Self::Failed {
                message: match kind {
                    notify::ErrorKind::Generic(message) => message,
                    notify::ErrorKind::Io(io) => io.to_string(),
                    other => format!("{other:?}"),
                },
                paths: error.paths,
            },
        }
    }
}

/// What a [`Watcher`] yields: a batch of changes, or an error to report.
pub type WatchItem = Result<ChangeBatch, WatchError>;

/// Compiled ignore patterns.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    patterns: Vec<String>,
    files: Vec<PathBuf>,
}

impl IgnoreRules {
    /// Compiles patterns (see [`WatchOptions::ignore`]); a trailing `/` is accepted and
    /// ignored.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Self {
        Self {
            patterns: patterns
                .iter()
                .map(|p| p.as_ref().trim_end_matches('/').to_owned())
                .filter(|p| !p.is_empty())
                .collect(),
            files: Vec::new(),
        }
    }

    /// Also ignores these files (exact paths, canonical where they exist).
    pub fn with_files(mut self, files: &[PathBuf]) -> Self {
        self.files = files
            .iter()
            .map(|f| f.canonicalize().unwrap_or_else(|_| f.clone()))
            .collect();
        self
    }

    /// Whether `path` (below one of `roots`, or anywhere if none contains it) is ignored.
    pub fn is_ignored(&self, roots: &[PathBuf], path: &Path) -> bool {
        if self.files.iter().any(|f| f == path) {
            return true;
        }
        let relative = roots
            .iter()
            .find_map(|root| path.strip_prefix(root).ok())
            .unwrap_or(path);
        relative.components().any(|component| match component {
            Component::Normal(name) => {
                let name = name.to_string_lossy();
                self.patterns.iter().any(|p| glob_match(p, &name))
            }
            _ => false,
        })
    }
}

/// Matches `text` against a pattern where `*` is any run of characters and `?` one character.
fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Watches directories recursively and yields debounced [`ChangeBatch`]es and errors.
/// Dropping it stops watching.
pub struct Watcher {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    items: mpsc::UnboundedReceiver<WatchItem>,
    roots: Vec<PathBuf>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("roots", &self.roots)
            .finish()
    }
}

impl Watcher {
    /// Starts watching `roots` (directories or files) recursively. Fails if a root does not
    /// exist or cannot be watched (for instance past the kernel's watch limit); later failures
    /// are yielded as error items.
    pub fn new(roots: Vec<PathBuf>, options: WatchOptions) -> Result<Self, WatchError> {
        let roots = roots
            .into_iter()
            .map(|root| {
                root.canonicalize()
                    .map_err(|_| WatchError::RootNotFound(root.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (raw_sender, raw_receiver) = std_mpsc::channel::<DebounceEventResult>();
        // The debouncer only normalises events (rename pairs, one event per path); grouping into
        // batches is done below with the full debounce time.
        let inner_timeout = (options.debounce / 4).max(Duration::from_millis(10));
        let mut debouncer = new_debouncer(inner_timeout, None, raw_sender)?;
        for root in &roots {
            debouncer.watch(root, RecursiveMode::Recursive)?;
        }
        let (sender, items) = mpsc::unbounded_channel();
        let rules = IgnoreRules::new(&options.ignore).with_files(&options.ignore_files);
        let thread_roots = roots.clone();
        let debounce = options.debounce;
        std::thread::Builder::new()
            .name("coflux-dev-watch".into())
            .spawn(move || forward(&raw_receiver, &sender, &rules, &thread_roots, debounce))
            .map_err(|e| WatchError::Failed {
                message: format!("cannot start the watch thread: {e}"),
                paths: Vec::new(),
            })?;
        tracing::info!(roots = ?roots, debounce_ms = debounce.as_millis() as u64, "watching for changes");
        Ok(Self {
            _debouncer: debouncer,
            items,
            roots,
        })
    }

    /// The watched roots (canonical paths).
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// The next batch or error; `None` once watching has stopped.
    pub async fn next(&mut self) -> Option<WatchItem> {
        self.items.recv().await
    }
}

/// Whether an event kind is a change to content or names (not an access or a metadata touch).
fn is_change(kind: &EventKind) -> bool {
    !matches!(
        kind,
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_))
    )
}

/// Gathers debounced events into batches, emitted once `debounce` passes without a relevant
/// change; errors are sent at once. Returns when either side of it closes.
fn forward(
    raw: &std_mpsc::Receiver<DebounceEventResult>,
    out: &mpsc::UnboundedSender<WatchItem>,
    rules: &IgnoreRules,
    roots: &[PathBuf],
    debounce: Duration,
) {
    let mut paths = BTreeSet::new();
    let mut rescan = false;
    let mut last_change: Option<Instant> = None;
    loop {
        let received = match last_change {
            None => raw
                .recv()
                .map_err(|_| std_mpsc::RecvTimeoutError::Disconnected),
            Some(at) => raw.recv_timeout(debounce.saturating_sub(at.elapsed())),
        };
        match received {
            Ok(Ok(events)) => {
                let mut relevant = false;
                for event in events {
                    if event.need_rescan() {
                        rescan = true;
                        relevant = true;
                        continue;
                    }
                    if !is_change(&event.kind) {
                        continue;
                    }
                    for path in &event.paths {
                        if !rules.is_ignored(roots, path) {
                            paths.insert(path.clone());
                            relevant = true;
                        }
                    }
                }
                if relevant {
                    last_change = Some(Instant::now());
                }
            }
            Ok(Err(errors)) => {
                for error in errors {
                    let error = WatchError::from(error);
                    tracing::warn!(code = error.code(), %error, "file watch error");
                    if out.send(Err(error)).is_err() {
                        return;
                    }
                }
            }
            Err(std_mpsc::RecvTimeoutError::Timeout) => {
                let batch = ChangeBatch {
                    paths: std::mem::take(&mut paths).into_iter().collect(),
                    rescan: std::mem::take(&mut rescan),
                };
                last_change = None;
                tracing::debug!(
                    changed = batch.paths.len(),
                    rescan = batch.rescan,
                    "files changed"
                );
                if out.send(Ok(batch)).is_err() {
                    return;
                }
            }
            Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn rules() -> IgnoreRules {
        IgnoreRules::new(DEFAULT_IGNORE)
    }

    #[test]
    fn globs_match_within_a_component() {
        assert!(glob_match("*.pyc", "a.pyc"));
        assert!(glob_match("*.pyc", ".pyc"));
        assert!(!glob_match("*.pyc", "a.py"));
        assert!(glob_match(".#*", ".#main.py"));
        assert!(glob_match("#*#", "#main.py#"));
        assert!(!glob_match("#*#", "#main.py"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("*a*b*", "xxaxxbxx"));
        assert!(!glob_match("target", "targets"));
    }

    #[test]
    fn default_rules_ignore_build_output_caches_and_editor_files() {
        let root = PathBuf::from("/repo");
        let roots = [root.clone()];
        for ignored in [
            "target/debug/foo",
            ".git/index",
            "pkg/__pycache__/m.cpython-312.pyc",
            ".venv/lib/x.py",
            "m.pyc",
            ".main.py.swp",
            "main.py~",
            ".#main.py",
            "4913",
        ] {
            assert!(rules().is_ignored(&roots, &root.join(ignored)), "{ignored}");
        }
        for kept in [
            "main.py",
            "pkg/mod.py",
            "src/lib.rs",
            "Cargo.toml",
            "targets.py",
        ] {
            assert!(!rules().is_ignored(&roots, &root.join(kept)), "{kept}");
        }
        // Only components below the root count: a repository inside `target/` still works.
        let nested = PathBuf::from("/home/me/target/repo");
        assert!(!rules().is_ignored(std::slice::from_ref(&nested), &nested.join("main.py")));
    }

    #[test]
    fn files_ignored_by_path_are_only_those() {
        let root = PathBuf::from("/repo");
        let rules = rules().with_files(&[root.join("agent.log")]);
        let roots = [root.clone()];
        assert!(rules.is_ignored(&roots, &root.join("agent.log")));
        assert!(!rules.is_ignored(&roots, &root.join("sub/agent.log")));
        assert!(!rules.is_ignored(&roots, &root.join("main.py")));
    }

    #[test]
    fn notify_errors_keep_their_meaning() {
        let limit = WatchError::from(notify::Error::new(notify::ErrorKind::MaxFilesWatch));
        assert_eq!(limit.code(), "watch_limit");
        assert!(limit.to_string().contains("max_user_watches"));
        let enospc = WatchError::from(notify::Error::io(std::io::Error::from_raw_os_error(28)));
        assert_eq!(enospc.code(), "watch_limit");
        let other = WatchError::from(notify::Error::generic("boom").add_path("/x".into()));
        assert_eq!(other.code(), "watch_failed");
        assert!(other.to_string().contains("boom") && other.to_string().contains("/x"));
    }

    #[test]
    fn errors_from_the_debouncer_are_reported_not_dropped() {
        let (raw_tx, raw_rx) = std_mpsc::channel();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let thread = std::thread::spawn(move || {
            forward(&raw_rx, &tx, &rules(), &[], Duration::from_millis(20));
        });
        raw_tx
            .send(Err(vec![notify::Error::new(
                notify::ErrorKind::MaxFilesWatch,
            )]))
            .unwrap();
        drop(raw_tx);
        thread.join().unwrap();
        let item = rx.try_recv().unwrap();
        assert_eq!(item.unwrap_err().code(), "watch_limit");
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn missing_roots_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = Watcher::new(vec![dir.path().join("nope")], WatchOptions::default()).unwrap_err();
        assert_eq!(err.code(), "watch_root_not_found");
    }

    async fn next_within(watcher: &mut Watcher, wait: Duration) -> Option<WatchItem> {
        tokio::time::timeout(wait, watcher.next())
            .await
            .ok()
            .flatten()
    }

    fn repo() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        fs::write(root.join("main.py"), "x = 1\n").unwrap();
        for sub in ["pkg", "__pycache__", "target", ".git", ".venv"] {
            fs::create_dir(root.join(sub)).unwrap();
        }
        (dir, root)
    }

    #[tokio::test]
    async fn editing_a_python_file_gives_one_batch() {
        let (_dir, root) = repo();
        let mut watcher = Watcher::new(vec![root.clone()], WatchOptions::default()).unwrap();
        let started = Instant::now();
        fs::write(root.join("main.py"), "x = 2\n").unwrap();
        let batch = next_within(&mut watcher, Duration::from_secs(2))
            .await
            .expect("a batch")
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(batch.paths, vec![root.join("main.py")]);
        assert!(!batch.rescan);
        assert!(
            next_within(&mut watcher, Duration::from_millis(500))
                .await
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_burst_of_writes_gives_one_batch() {
        let (_dir, root) = repo();
        let mut watcher = Watcher::new(vec![root.clone()], WatchOptions::default()).unwrap();
        for i in 0..10 {
            let file = if i % 2 == 0 { "main.py" } else { "pkg/mod.py" };
            fs::write(root.join(file), format!("x = {i}\n")).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        let batch = next_within(&mut watcher, Duration::from_secs(2))
            .await
            .expect("a batch")
            .unwrap();
        assert!(batch.paths.contains(&root.join("main.py")), "{batch:?}");
        assert!(batch.paths.contains(&root.join("pkg/mod.py")), "{batch:?}");
        assert!(
            next_within(&mut watcher, Duration::from_millis(600))
                .await
                .is_none(),
            "a burst must give a single batch"
        );
    }

    #[tokio::test]
    async fn changes_in_ignored_places_give_nothing() {
        let (_dir, root) = repo();
        let mut watcher = Watcher::new(vec![root.clone()], WatchOptions::default()).unwrap();
        fs::write(root.join("__pycache__/main.cpython-312.pyc"), "x").unwrap();
        fs::create_dir_all(root.join("target/debug")).unwrap();
        fs::write(root.join("target/debug/build.log"), "x").unwrap();
        fs::write(root.join(".git/index"), "x").unwrap();
        fs::write(root.join(".venv/site.py"), "x").unwrap();
        fs::write(root.join(".main.py.swp"), "x").unwrap();
        fs::write(root.join("main.py~"), "x").unwrap();
        assert!(
            next_within(&mut watcher, Duration::from_millis(800))
                .await
                .is_none(),
            "ignored changes gave a batch"
        );
        // The watcher is still alive: a real change comes through.
        fs::write(root.join("pkg/new.py"), "y = 1\n").unwrap();
        let batch = next_within(&mut watcher, Duration::from_secs(2))
            .await
            .expect("a batch")
            .unwrap();
        assert_eq!(batch.paths, vec![root.join("pkg/new.py")]);
    }
}
