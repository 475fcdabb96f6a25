//! Conformance scenarios: `tests/scenarios/NAME.rules` and `NAME.events`
//! replayed through the library, compared byte for byte with
//! `NAME.expected` (standard output) and `NAME.stderr` (standard error,
//! empty when the file is absent). Each expectation was derived by hand
//! from the behaviour reference; the derivation sits in the events file as
//! `#` comments, so a mismatch can be judged without rerunning anything.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rvs_core::director::DirectorConfig;
use rvs_replay::{Replay, load_rules, parse_events};

fn scenario_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Longest-common-subsequence line diff, printed unified-style (`-`
/// expected, `+` actual, ` ` common). Scenario outputs are a few hundred
/// lines at most, so the quadratic table is fine and keeps the runner free
/// of dependencies.
fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.split_inclusive('\n').collect();
    let b: Vec<&str> = actual.split_inclusive('\n').collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::from("--- expected\n+++ actual\n");
    let show = |line: &str| {
        // Trailing spaces matter in ipvsadm listings; make them visible.
        let body = line.strip_suffix('\n').unwrap_or(line);
        let trimmed = body.trim_end_matches(' ');
        let spaces = body.len() - trimmed.len();
        let eol = if line.ends_with('\n') {
            ""
        } else {
            " (no newline)"
        };
        if spaces > 0 {
            format!("{trimmed}{}{eol}", "·".repeat(spaces))
        } else {
            format!("{body}{eol}")
        }
    };
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            let _ = writeln!(out, " {}", show(a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "-{}", show(a[i]));
            i += 1;
        } else {
            let _ = writeln!(out, "+{}", show(b[j]));
            j += 1;
        }
    }
    out
}

/// Runs one scenario; `Err` holds the report of every difference.
fn run_scenario(name: &str) -> Result<(), String> {
    let dir = scenario_dir();
    let rules_path = dir.join(format!("{name}.rules"));
    let events_path = dir.join(format!("{name}.events"));
    let director = load_rules(
        &read(&rules_path),
        &rules_path.display().to_string(),
        DirectorConfig::default(),
    )
    .map_err(|e| format!("{name}: rules refused: {}", e.0))?;
    let events = parse_events(&read(&events_path))
        .map_err(|e| format!("{name}: {}", e.with_file("events")))?;
    let mut replay = Replay::new(director);
    replay.run(&events);

    let expected_out = read(&dir.join(format!("{name}.expected")));
    let stderr_path = dir.join(format!("{name}.stderr"));
    let expected_err = if stderr_path.exists() {
        read(&stderr_path)
    } else {
        String::new()
    };
    let mut report = String::new();
    if replay.stdout() != expected_out {
        let _ = write!(
            report,
            "{name}: standard output differs\n{}",
            diff(&expected_out, replay.stdout())
        );
    }
    if replay.stderr() != expected_err {
        let _ = write!(
            report,
            "{name}: standard error differs\n{}",
            diff(&expected_err, replay.stderr())
        );
    }
    if report.is_empty() {
        Ok(())
    } else {
        Err(report)
    }
}

fn scenario_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(scenario_dir())
        .expect("tests/scenarios exists")
        .filter_map(|e| {
            let path = e.expect("readable directory entry").path();
            (path.extension()? == "rules")
                .then(|| path.file_stem()?.to_str().map(str::to_string))
                .flatten()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn every_scenario_has_its_files() {
    let dir = scenario_dir();
    let names = scenario_names();
    assert!(!names.is_empty(), "no scenarios in {}", dir.display());
    for name in &names {
        for ext in ["events", "expected"] {
            let p = dir.join(format!("{name}.{ext}"));
            assert!(p.is_file(), "{} is missing", p.display());
        }
    }
}

#[test]
fn scenarios_match_their_expectations() {
    let failures: Vec<String> = scenario_names()
        .iter()
        .filter_map(|n| run_scenario(n).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} scenario(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn diff_marks_changed_lines_and_trailing_spaces() {
    let d = diff("a\nb \nc\n", "a\nB\nc\n");
    assert_eq!(
        d, "--- expected\n+++ actual\n a\n-b·\n+B\n c\n",
        "diff output:\n{d}"
    );
}
