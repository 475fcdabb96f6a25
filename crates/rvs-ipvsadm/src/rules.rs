//! Rules files: what `ipvsadm -R` reads (and `ipvsadm -Sn` writes).
//!
//! One invocation per line, words separated by blanks (spaces, tabs,
//! carriage returns); blank lines and lines whose first non-blank character
//! is `#` are skipped; a line may start with the word `ipvsadm`. Only the
//! commands that change rules are allowed (`-A -E -D -C -a -e -d -Z
//! --set`).
//!
//! Errors carry the 1-based line and the 1-based byte column of the word at
//! fault. Failures that depend on the table (a service that already exists,
//! a missing server) are found by whoever applies the commands; it reports
//! them in the same form with [`error_at`].

use std::fmt;

use crate::cmd::{Command, parse_args};

/// One command of a rules file and the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleLine {
    /// 1-based line number.
    pub line: usize,
    /// The command, fully defaulted.
    pub command: Command,
}

/// A rules-file error: `LINE:COLUMN: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct RulesError {
    /// 1-based line number.
    pub line: usize,
    /// 1-based byte column of the word at fault (the line's first word when
    /// the whole line is at fault).
    pub column: usize,
    /// What is wrong, in ipvsadm's words where it has them.
    pub message: String,
}

impl RulesError {
    /// `FILE:LINE:COLUMN: message`.
    pub fn with_file(&self, file: &str) -> String {
        format!("{file}:{self}")
    }
}

/// An error at a given place, for failures found while applying the rules.
pub fn error_at(line: usize, column: usize, message: impl Into<String>) -> RulesError {
    RulesError {
        line,
        column,
        message: message.into(),
    }
}

/// The words of a line with their 1-based byte columns.
fn words(line: &str) -> Vec<(&str, usize)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for (i, b) in line.bytes().enumerate() {
        let blank = matches!(b, b' ' | b'\t' | b'\r' | b'\x0b' | b'\x0c');
        match (blank, start) {
            (true, Some(s)) => {
                out.push((&line[s..i], s + 1));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((&line[s..], s + 1));
    }
    out
}

/// Parses one line; `Ok(None)` for blank and comment lines.
pub fn parse_rule_line(line_no: usize, line: &str) -> Result<Option<RuleLine>, RulesError> {
    let ws = words(line);
    let Some(&(first, first_col)) = ws.first() else {
        return Ok(None);
    };
    if first.starts_with('#') {
        return Ok(None);
    }
    let argv: Vec<&str> = ws.iter().map(|w| w.0).collect();
    let col_of = |idx: Option<usize>| idx.and_then(|i| ws.get(i)).map_or(first_col, |w| w.1);
    let command = parse_args(&argv).map_err(|e| error_at(line_no, col_of(e.index), e.message))?;
    if !command.is_rule() {
        // The command word is the first one after an optional `ipvsadm`.
        let cmd_idx = usize::from(argv[0] == "ipvsadm");
        let word = argv.get(cmd_idx).copied().unwrap_or(first);
        let message = match command {
            Command::Restore => "nested -R".to_string(),
            _ => format!(
                "{word}: only -A -E -D -C -a -e -d -Z and --set are allowed in a rules file"
            ),
        };
        return Err(error_at(line_no, col_of(Some(cmd_idx)), message));
    }
    Ok(Some(RuleLine {
        line: line_no,
        command,
    }))
}

/// Parses a whole rules file, stopping at the first error.
pub fn parse_rules(text: &str) -> Result<Vec<RuleLine>, RulesError> {
    let mut out = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        if let Some(r) = parse_rule_line(i + 1, line)? {
            out.push(r);
        }
    }
    Ok(out)
}

impl fmt::Display for RuleLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?}", self.line, self.command)
    }
}
