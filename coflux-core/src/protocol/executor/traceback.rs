//! Python traceback text ⇄ [`Frame`]s, best effort: each `File "x", line N, in f` line makes a
//! frame, with the indented line after it as the source. Text in which no frame parses becomes
//! a single frame holding the whole text, so nothing is lost. [`WireError`] is an error as
//! executors report it, its traceback as text.

use serde::{Deserialize, Serialize};

use crate::model::{ErrorInfo, Frame};

/// An error as executors report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireError {
    /// Qualified type, e.g. `builtins.ValueError`.
    #[serde(rename = "type")]
    pub error_type: String,
    /// The message.
    #[serde(default)]
    pub message: String,
    /// Formatted traceback text.
    #[serde(default)]
    pub traceback: String,
    /// Present only when the target decides retryability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
}

impl WireError {
    /// The model error, with the traceback parsed into frames.
    pub fn to_error_info(&self) -> ErrorInfo {
        ErrorInfo {
            error_type: self.error_type.clone(),
            message: self.message.clone(),
            frames: parse_traceback(&self.traceback),
            retryable: self.retryable,
        }
    }

    /// The wire error for a model error, with its frames formatted as a Python traceback.
    pub fn from_error_info(info: &ErrorInfo) -> Self {
        Self {
            error_type: info.error_type.clone(),
            message: info.message.clone(),
            traceback: format_traceback(&info.frames),
            retryable: info.retryable,
        }
    }
}

/// Parses a formatted Python traceback into frames, outermost first.
pub fn parse_traceback(text: &str) -> Vec<Frame> {
    let lines: Vec<&str> = text.lines().collect();
    let mut frames = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if let Some(mut frame) = parse_frame_line(lines[i]) {
            if let Some(next) = lines.get(i + 1)
                && is_source_line(next)
            {
                frame.code = Some(next.trim().to_owned());
                i += 1;
            }
            frames.push(frame);
        }
        i += 1;
    }
    if frames.is_empty() && !text.trim().is_empty() {
        frames.push(Frame {
            file: String::new(),
            line: 0,
            name: text.trim_end().to_owned(),
            code: None,
        });
    }
    frames
}

/// Formats frames as a Python traceback (what [`parse_traceback`] reads back); no frames give
/// an empty text.
pub fn format_traceback(frames: &[Frame]) -> String {
    if frames.is_empty() {
        return String::new();
    }
    let mut text = String::from("Traceback (most recent call last):\n");
    for frame in frames {
        text.push_str(&format!(
            "  File \"{}\", line {}, in {}\n",
            frame.file, frame.line, frame.name
        ));
        if let Some(code) = &frame.code {
            text.push_str(&format!("    {code}\n"));
        }
    }
    text
}

/// `  File "path", line 12, in name`.
fn parse_frame_line(line: &str) -> Option<Frame> {
    let rest = line.trim_start().strip_prefix("File \"")?;
    let (file, rest) = rest.rsplit_once("\", line ")?;
    let (number, name) = match rest.split_once(", in ") {
        Some((number, name)) => (number, name.trim_end()),
        None => (rest.trim_end(), ""),
    };
    Some(Frame {
        file: file.to_owned(),
        line: number.trim().parse().ok()?,
        name: name.to_owned(),
        code: None,
    })
}

/// A source line follows its frame line, indented more deeply than it, and is not a caret
/// marker (`^^^^`) or another frame.
fn is_source_line(line: &str) -> bool {
    let trimmed = line.trim();
    line.starts_with("    ")
        && !trimmed.is_empty()
        && !trimmed.starts_with("File \"")
        && !trimmed.chars().all(|c| matches!(c, '^' | '~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PYTHON: &str = "Traceback (most recent call last):\n  File \"/proj/myflows.py\", line 24, in boom\n    raise ValueError(f\"bad value {n}\")\n  File \"/proj/helpers.py\", line 3, in check\n    ^^^^^^^^^^^\n  File \"<string>\", line 1, in <module>\nValueError: bad value 7\n";

    #[test]
    fn parses_python_frames_with_their_source() {
        let frames = parse_traceback(PYTHON);
        assert_eq!(frames.len(), 3);
        assert_eq!(
            frames[0],
            Frame {
                file: "/proj/myflows.py".into(),
                line: 24,
                name: "boom".into(),
                code: Some("raise ValueError(f\"bad value {n}\")".into()),
            }
        );
        assert_eq!(frames[1].code, None, "a caret line is not source");
        assert_eq!((frames[2].file.as_str(), frames[2].line), ("<string>", 1));
        assert_eq!(frames[2].name, "<module>");
    }

    #[test]
    fn unparseable_text_becomes_one_frame() {
        let frames = parse_traceback("something went wrong\nbadly");
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].name, "something went wrong\nbadly");
        assert!(parse_traceback("  \n").is_empty());
    }

    #[test]
    fn formatted_frames_parse_back() {
        let frames = parse_traceback(PYTHON);
        assert_eq!(parse_traceback(&format_traceback(&frames)), frames);
        assert!(parse_traceback(&format_traceback(&[])).is_empty());
    }
}
