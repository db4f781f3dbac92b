//! Short, URL-friendly identifiers.
//!
//! A run is `R` followed by its per-project sequence number in Crockford base 32 (`R1`, `R2a`).
//! A step is `<run>:<n>` (numbered from 1 within its run) and an execution is
//! `<run>:<n>:<attempt>`, as in Coflux 0.12, so every id names its run and can be routed without
//! a lookup.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Why an id string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id '{text}'")]
pub struct IdParseError {
    /// Which kind of id was expected ("run", "step", "execution").
    pub kind: &'static str,
    /// The text that was given (truncated to 64 characters).
    pub text: String,
}

impl IdParseError {
    pub(crate) fn new(kind: &'static str, text: &str) -> Self {
        Self {
            kind,
            text: text.chars().take(64).collect(),
        }
    }
}

fn encode_base32(mut n: u64) -> String {
    let mut out = Vec::new();
    loop {
        out.push(ALPHABET[(n % 32) as usize]);
        n /= 32;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn decode_base32(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 12 {
        return None;
    }
    let mut n: u64 = 0;
    for c in s.bytes() {
        let digit = ALPHABET.iter().position(|&a| a == c.to_ascii_lowercase())? as u64;
        n = n.checked_mul(32)?.checked_add(digit)?;
    }
    Some(n)
}

/// A run, identified by its sequence number within the project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(pub u64);

/// A step: one call site within a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StepId {
    /// The run the step belongs to.
    pub run: RunId,
    /// The step's number within the run, from 1; the initial step is 1.
    pub number: u32,
}

/// One attempt of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecutionId {
    /// The step this is an attempt of.
    pub step: StepId,
    /// The attempt number, from 1.
    pub attempt: u32,
}

/// An environment within a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EnvironmentId(pub u32);

/// A worker (an executor host: an in-process worker or, later, an agent session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkerId(pub u64);

impl StepId {
    /// The step's execution with the given attempt number.
    pub fn execution(self, attempt: u32) -> ExecutionId {
        ExecutionId {
            step: self,
            attempt,
        }
    }
}

impl ExecutionId {
    /// The run this execution belongs to.
    pub fn run(self) -> RunId {
        self.step.run
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "R{}", encode_base32(self.0))
    }
}
impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.run, self.number)
    }
}
impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.step, self.attempt)
    }
}
impl fmt::Display for EnvironmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E{}", encode_base32(u64::from(self.0)))
    }
}
impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "W{}", encode_base32(self.0))
    }
}

impl FromStr for RunId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.strip_prefix('R')
            .and_then(decode_base32)
            .map(RunId)
            .ok_or_else(|| IdParseError::new("run", s))
    }
}
impl FromStr for WorkerId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.strip_prefix('W')
            .and_then(decode_base32)
            .map(WorkerId)
            .ok_or_else(|| IdParseError::new("worker", s))
    }
}
impl FromStr for StepId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IdParseError::new("step", s);
        let (run, number) = s.split_once(':').ok_or_else(err)?;
        let run = run.parse().map_err(|_| err())?;
        let number = number
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(err)?;
        Ok(StepId { run, number })
    }
}
impl FromStr for ExecutionId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IdParseError::new("execution", s);
        let (step, attempt) = s.rsplit_once(':').ok_or_else(err)?;
        let step = step.parse().map_err(|_| err())?;
        let attempt = attempt
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(err)?;
        Ok(ExecutionId { step, attempt })
    }
}

macro_rules! string_serde {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}
string_serde!(RunId, StepId, ExecutionId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text() {
        for n in [0u64, 1, 31, 32, 1_000_000, u64::from(u32::MAX)] {
            let e = ExecutionId {
                step: StepId {
                    run: RunId(n),
                    number: 7,
                },
                attempt: 3,
            };
            let text = e.to_string();
            assert_eq!(text.parse::<ExecutionId>().unwrap(), e, "{text}");
        }
        assert_eq!(RunId(33).to_string(), "R11");
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in [
            "", "R", "X1", "R1", "R1:0:1", "R1:1:0", "R!:1:1", "R1:1:1:1", "R1:a:1",
        ] {
            assert!(bad.parse::<ExecutionId>().is_err(), "{bad}");
        }
        assert!("R1:0".parse::<StepId>().is_err());
        assert!("Rzzzzzzzzzzzzzz".parse::<RunId>().is_err());
    }
}
