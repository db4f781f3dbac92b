//! The test venv's Python (`coflux==0.12.0`) and the fixture modules in `tests/python/`.
#![allow(dead_code)] // Each test binary uses a different part.

use std::path::PathBuf;

use coflux_agent::executor::AdapterCommand;
use coflux_core::model::TargetRef;

use super::fake_host::crate_dir;

/// The Python of the test venv; fails loudly if it is missing.
pub fn python() -> PathBuf {
    if let Ok(python) = std::env::var("COFLUX_TEST_PYTHON") {
        return PathBuf::from(python);
    }
    let python = crate_dir().join("../target/python-venv/bin/python");
    static SETUP: std::sync::Once = std::sync::Once::new();
    SETUP.call_once(|| {
        if !python.exists() {
            // First run on this machine: create the venv (needs PyPI).
            let _ =
                std::process::Command::new(crate_dir().join("../scripts/setup-python.sh")).status();
        }
    });
    assert!(
        python.exists(),
        "no Python for the executor tests at {}: run scripts/setup-python.sh (or set COFLUX_TEST_PYTHON)",
        python.display()
    );
    python
}

/// `<venv python> -m coflux`.
pub fn adapter() -> AdapterCommand {
    AdapterCommand::new([
        python().to_string_lossy().into_owned(),
        "-m".into(),
        "coflux".into(),
    ])
}

/// The fixture modules' directory.
pub fn project() -> PathBuf {
    crate_dir().join("tests/python")
}

/// A target of the `flows` fixture module.
pub fn flows(name: &str) -> TargetRef {
    TargetRef::new("flows", name)
}
