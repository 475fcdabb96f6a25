//! The `rvsadm` binary on bad input: exit status 2, a message on standard
//! error, nothing on standard output; and `check` printing `-Sn` form.

use std::path::PathBuf;
use std::process::{Command, Output};

const RULES: &str = "-A -t 203.0.113.1:80 -s rr\n-a -t 203.0.113.1:80 -r 192.0.2.1:80 -m\n";
const EVENTS: &str = "0 open tcp 198.51.100.1:1000 203.0.113.1:80\n";

/// A file of its own for each test, so tests can run in parallel.
fn file(test: &str, name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("rvsadm-cli-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, text).expect("temporary file");
    path.display().to_string()
}

fn rvsadm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rvsadm"))
        .args(args)
        .output()
        .expect("rvsadm runs")
}

/// Exit status 2, nothing on standard output; returns standard error.
fn fails(args: &[&str]) -> String {
    let out = rvsadm(args);
    let stderr = String::from_utf8(out.stderr).expect("UTF-8 stderr");
    assert_eq!(out.status.code(), Some(2), "args {args:?}, stderr {stderr}");
    assert!(
        out.stdout.is_empty(),
        "args {args:?} printed on stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

#[test]
fn replay_runs_and_prints_open_lines() {
    let rules = file("ok", "r.rules", RULES);
    let events = file("ok", "e.events", EVENTS);
    let out = rvsadm(&["replay", "--rules", &rules, "--events", &events]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "0 198.51.100.1:1000 -> 192.0.2.1:80\n"
    );
    assert!(out.stderr.is_empty());
}

#[test]
fn missing_rules_or_events() {
    let rules = file("missing", "r.rules", RULES);
    let events = file("missing", "e.events", EVENTS);
    assert_eq!(
        fails(&["replay", "--events", &events]),
        "replay needs --rules FILE\n"
    );
    assert_eq!(
        fails(&["replay", "--rules", &rules]),
        "replay needs --events FILE\n"
    );
    assert_eq!(fails(&["replay", "--rules"]), "--rules needs a value\n");
    assert_eq!(fails(&["check"]), "check needs --rules FILE\n");
}

#[test]
fn unreadable_file_is_named() {
    let rules = file("unreadable", "r.rules", RULES);
    let missing = format!("{rules}.absent");
    let err = fails(&["replay", "--rules", &rules, "--events", &missing]);
    assert!(err.starts_with(&format!("{missing}: ")), "stderr: {err}");
    let err = fails(&["check", "--rules", &missing]);
    assert!(err.starts_with(&format!("{missing}: ")), "stderr: {err}");
}

#[test]
fn bad_rules_line_is_located() {
    let bad_line = "  -a -t 203.0.113.1:80 -r 192.0.2.1:80 -m -w nope";
    let rules = file(
        "badrules",
        "r.rules",
        &format!("-A -t 203.0.113.1:80 -s rr\n{bad_line}\n"),
    );
    let events = file("badrules", "e.events", EVENTS);
    let column = bad_line.find("nope").unwrap() + 1;
    let expected = format!("{rules}:2:{column}: illegal weight specified\n");
    assert_eq!(
        fails(&["replay", "--rules", &rules, "--events", &events]),
        expected
    );
    assert_eq!(fails(&["check", "--rules", &rules]), expected);
}

#[test]
fn refused_rule_is_located_and_nothing_runs() {
    // A line the kernel would refuse (a duplicate service) stops the load.
    let rules = file(
        "refusedrule",
        "r.rules",
        &format!("{RULES}-A -t 203.0.113.1:80 -s wlc\n"),
    );
    let events = file("refusedrule", "e.events", EVENTS);
    assert_eq!(
        fails(&["replay", "--rules", &rules, "--events", &events]),
        format!("{rules}:3:1: Service already exists\n")
    );
}

#[test]
fn bad_events_line_is_located() {
    let rules = file("badevents", "r.rules", RULES);
    let events = file(
        "badevents",
        "e.events",
        "0 list\n# a comment\n  abc open tcp 198.51.100.1:1 203.0.113.1:80\n",
    );
    assert_eq!(
        fails(&["replay", "--rules", &rules, "--events", &events]),
        format!("{events}:3:3: expected a time in milliseconds, found \"abc\"\n")
    );
}

#[test]
fn unknown_subcommand_and_option() {
    let err = fails(&["frob"]);
    assert!(err.starts_with("unknown command \"frob\""), "stderr: {err}");
    assert!(err.contains("usage:"), "stderr: {err}");
    let err = fails(&["replay", "--frob"]);
    assert_eq!(err, "unknown option \"--frob\"\n");
    assert!(fails(&[]).starts_with("usage:"));
}

#[test]
fn seed_must_be_a_number() {
    let rules = file("seed", "r.rules", RULES);
    let events = file("seed", "e.events", EVENTS);
    assert_eq!(
        fails(&[
            "replay", "--rules", &rules, "--events", &events, "--seed", "x"
        ]),
        "--seed takes a number, not \"x\"\n"
    );
    assert_eq!(
        rvsadm(&[
            "replay", "--rules", &rules, "--events", &events, "--seed", "7"
        ])
        .status
        .code(),
        Some(0)
    );
}

#[test]
fn check_prints_save_form() {
    // Bundled options, a leading `ipvsadm`, comments and options out of
    // order come back as ipvsadm -Sn writes them.
    let rules = file(
        "check",
        "r.rules",
        "# web\nipvsadm -At 203.0.113.1:80 -s rr\n-a -m -r 192.0.2.1:8080 -t 203.0.113.1:80 -w 2\n-A -u 203.0.113.2:53 -o -s rr\n",
    );
    let out = rvsadm(&["check", "--rules", &rules]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "-A -t 203.0.113.1:80 -s rr\n-a -t 203.0.113.1:80 -r 192.0.2.1:8080 -m -w 2\n-A -u 203.0.113.2:53 -s rr -o\n"
    );
}
