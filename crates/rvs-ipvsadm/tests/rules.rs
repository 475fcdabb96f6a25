//! Rules files: line/column reporting, and the real-world corpus.

use std::path::PathBuf;

use rvs_ipvsadm::cmd::Command;
use rvs_ipvsadm::rules::{error_at, parse_rules};

#[test]
fn comments_blank_lines_prefix_and_columns() {
    let text = "# header\n\n   \t\n  ipvsadm -A -t 192.0.2.1:80 -s rr\n\t-a  -t 192.0.2.1:80\t-r 10.0.0.1 -m\r\n   # indented comment\n-C";
    let rules = parse_rules(text).unwrap();
    assert_eq!(
        rules.iter().map(|r| r.line).collect::<Vec<_>>(),
        vec![4, 5, 7]
    );
    assert!(matches!(rules[0].command, Command::AddService(_)));
    assert!(matches!(rules[1].command, Command::AddDest { .. }));
    assert_eq!(rules[2].command, Command::Clear);
}

#[test]
fn errors_point_at_the_word() {
    let e = parse_rules("-C\n-A -t 192.0.2.1:80 -s  bogus\n").unwrap_err();
    assert_eq!((e.line, e.column), (2, 24));
    assert_eq!(
        e.to_string(),
        "2:24: Scheduler or persistence engine not found"
    );
    assert_eq!(
        e.with_file("rules.txt"),
        "rules.txt:2:24: Scheduler or persistence engine not found"
    );
    // A fault of the whole line points at its first word.
    let e = parse_rules("  ipvsadm -A -s rr").unwrap_err();
    assert_eq!((e.line, e.column), (1, 3));
    assert_eq!(
        e.message,
        "You need to supply the 'service-address' option for the 'add-service' command"
    );
    let e = parse_rules("\t-at 192.0.2.1:80 -r 10.0.0.1:80 -w 70000").unwrap_err();
    assert_eq!(
        (e.line, e.column, e.message.as_str()),
        (1, 37, "illegal weight specified")
    );
}

#[test]
fn only_rule_commands_are_allowed() {
    let e = parse_rules("-A -t 192.0.2.1:80\n-R\n").unwrap_err();
    assert_eq!((e.line, e.column, e.message.as_str()), (2, 1, "nested -R"));
    let e = parse_rules("ipvsadm  -Ln").unwrap_err();
    assert_eq!(e.column, 10);
    assert_eq!(
        e.message,
        "-Ln: only -A -E -D -C -a -e -d -Z and --set are allowed in a rules file"
    );
    for bad in [
        "-S -n",
        "-h",
        "-v",
        "--start-daemon master",
        "--stop-daemon backup",
        "-L",
    ] {
        assert!(parse_rules(bad).is_err(), "{bad}");
    }
    for good in [
        "-E -t 192.0.2.1:80",
        "-D -t 192.0.2.1:80",
        "-e -t 192.0.2.1:80 -r 10.0.0.1",
        "-d -t 192.0.2.1:80 -r 10.0.0.1",
        "-Z",
        "--set 1 2 3",
    ] {
        assert_eq!(parse_rules(good).unwrap().len(), 1, "{good}");
    }
}

#[test]
fn error_at_formats_like_parse_errors() {
    let e = error_at(7, 1, "Service already exists");
    assert_eq!(e.to_string(), "7:1: Service already exists");
    assert_eq!(e.with_file("f"), "f:7:1: Service already exists");
}

fn corpus_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/rules"
    ));
    assert!(
        dir.is_dir(),
        "the shared corpus is missing: {} (this test needs /work/shared)",
        dir.display()
    );
    dir
}

/// Files that fail on syntax, with the line of the first fault and a
/// piece of the message.
const SYNTAX_NEGATIVE: &[(&str, usize, &str)] = &[
    (
        "alibaba_lvs_issue15_fullnat_null.rules",
        3,
        "unexpected argument (null)",
    ),
    (
        "honghaier_dpvs_cheatsheet_negative.rules",
        6,
        "-z: unknown option",
    ),
    (
        "ipvsctl_get_bats_sequence.rules",
        25,
        "illegal real server address[:port] specified",
    ),
    (
        "unattributed_jobui_sysconfig_ipvsadm.rules",
        3,
        "host name `ns1.eflydns.net' refused",
    ),
    (
        "haitao_01_nat_portless_mismatch.rules",
        3,
        "Zero port specified for non-persistent service",
    ),
];

#[test]
fn corpus_rules_files() {
    let dir = corpus_dir();
    let mut seen = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rules"))
        .collect();
    entries.sort();
    assert!(entries.len() >= 30, "only {} rules files", entries.len());
    for path in entries {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let result = parse_rules(&text);
        match SYNTAX_NEGATIVE.iter().find(|(n, _, _)| *n == name) {
            Some(&(_, line, msg)) => {
                seen += 1;
                let e = result.expect_err(&name);
                assert_eq!(e.line, line, "{name}: {e}");
                assert!(e.message.contains(msg), "{name}: {e}");
            }
            None => {
                let rules = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                let commands = text
                    .lines()
                    .filter(|l| {
                        let t = l.trim_start();
                        !t.is_empty() && !t.starts_with('#')
                    })
                    .count();
                assert_eq!(rules.len(), commands, "{name}");
            }
        }
    }
    assert_eq!(seen, SYNTAX_NEGATIVE.len());
}
