//! Projects: isolated tenants, each with its own database and actor.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A validated project name: 1–63 characters of `[a-z0-9_-]`, starting with a letter or digit.
/// It is used as a directory name, so nothing else is accepted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProjectName(String);

/// Why a project name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid project name '{0}': use 1-63 lower-case letters, digits, '_' or '-', starting with a letter or digit"
)]
pub struct InvalidProjectName(pub String);

impl ProjectName {
    /// Validates a name.
    pub fn new(name: &str) -> Result<Self, InvalidProjectName> {
        let bytes = name.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= 63
            && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-');
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(InvalidProjectName(name.chars().take(80).collect()))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProjectName {
    type Error = InvalidProjectName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(&value)
    }
}
impl From<ProjectName> for String {
    fn from(value: ProjectName) -> Self {
        value.0
    }
}
impl fmt::Display for ProjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_are_safe_directory_names() {
        for ok in ["default", "acme-1", "a_b", "0x"] {
            assert!(ProjectName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "A",
            "a/b",
            "..",
            ".",
            "a.b",
            "a b",
            "%2e%2e",
            &"a".repeat(64),
        ] {
            assert!(ProjectName::new(bad).is_err(), "{bad}");
        }
    }
}
