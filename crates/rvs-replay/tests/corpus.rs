//! The real-world rule files in `shared/corpus/rules/`: each one the corpus
//! does not mark NEGATIVE loads, lists, and saves back to text that loads to
//! the same rules; each NEGATIVE one fails at the line ipvsadm would fail at,
//! with a `FILE:LINE:COLUMN: message` error and nothing applied.

use std::path::PathBuf;

use rvs_core::director::DirectorConfig;
use rvs_ipvsadm::ListOptions;
use rvs_ipvsadm::director::{list, save};
use rvs_replay::load_rules;

fn corpus_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/rules"
    ));
    assert!(
        dir.is_dir(),
        "the shared corpus must sit beside the checkout: {} is missing",
        dir.display()
    );
    dir
}

/// NEGATIVE files: (file, line, column, what the message says).
const NEGATIVE: &[(&str, usize, usize, &str)] = &[
    ("alibaba_lvs_issue15_fullnat_null.rules", 3, 44, "(null)"),
    (
        "alvs_scenario12_edit_deleted_service.rules",
        6,
        1,
        "No such service",
    ),
    (
        "alvs_scenario2_duplicate_service.rules",
        3,
        1,
        "Service already exists",
    ),
    (
        "haitao_01_nat_portless_mismatch.rules",
        3,
        1,
        "Zero port specified for non-persistent service",
    ),
    ("honghaier_dpvs_cheatsheet_negative.rules", 6, 31, "-z"),
    (
        "ipvsctl_get_bats_sequence.rules",
        25,
        24,
        "illegal real server address",
    ),
    (
        "kdt_issue_1139_notify_up_down.rules",
        2,
        1,
        "Service not defined",
    ),
    ("kdt_issue_795_quorum_up_ops.rules", 2, 1, "No such service"),
    (
        "unattributed_jobui_sysconfig_ipvsadm.rules",
        3,
        30,
        "host name",
    ),
];

#[test]
fn every_corpus_rules_file_behaves_as_labelled() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("corpus readable")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rules"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 30,
        "expected the whole corpus, found {}",
        files.len()
    );
    let mut negatives_seen = 0;
    for path in &files {
        let name = path.file_name().unwrap().to_str().unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        let result = load_rules(&text, name, DirectorConfig::default());
        match NEGATIVE.iter().find(|n| n.0 == name) {
            Some(&(_, line, column, needle)) => {
                negatives_seen += 1;
                let err = result.expect_err(name).0;
                let prefix = format!("{name}:{line}:{column}: ");
                assert!(
                    err.starts_with(&prefix),
                    "{name}: got {err:?}, want {prefix}..."
                );
                assert!(err.contains(needle), "{name}: {err:?} lacks {needle:?}");
            }
            None => {
                let d = result.unwrap_or_else(|e| panic!("{name} must load: {e}"));
                let listing = list(&d, &ListOptions::default()).unwrap();
                assert!(
                    listing.starts_with("IP Virtual Server version 1.2.1 (size=4096)\n"),
                    "{name}: {listing}"
                );
                let services = d.services();
                let service_lines = listing
                    .lines()
                    .filter(|l| {
                        !l.starts_with("  ->") && !l.starts_with("IP ") && !l.starts_with("Prot")
                    })
                    .count();
                assert_eq!(service_lines, services.len(), "{name}: {listing}");
                let saved = save(&d);
                let again = load_rules(&saved, "saved", DirectorConfig::default())
                    .unwrap_or_else(|e| panic!("{name}: saved rules must load: {e}\n{saved}"));
                assert_eq!(save(&again), saved, "{name}: save is not a fixed point");
            }
        }
    }
    assert_eq!(negatives_seen, NEGATIVE.len());
}

#[test]
fn ipvsadm_save_output_round_trips_byte_exact() {
    // ipvsadm -Sn output of a mixed table, in ipvsadm's order.
    let text = "\
-A -t 203.0.113.10:80 -s wlc
-a -t 203.0.113.10:80 -r 192.0.2.11:8080 -m -w 1
-a -t 203.0.113.10:80 -r 192.0.2.12:8080 -m -w 2
-A -t 203.0.113.10:443 -s rr -p 360 -M 255.255.255.0
-a -t 203.0.113.10:443 -r 192.0.2.11:443 -g -w 1
-a -t 203.0.113.10:443 -r 192.0.2.12:443 -g -w 0
-A -u 203.0.113.53:53 -s rr -o
-a -u 203.0.113.53:53 -r 192.0.2.21:53 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum
-a -u 203.0.113.53:53 -r 192.0.2.22:53 -i -w 1 --tun-type ipip
-A -t [2001:db8::80]:80 -s sh -b sh-fallback,sh-port
-a -t [2001:db8::80]:80 -r [2001:db8:1::a]:80 -m -w 1
-A -f 7 -s mh -p 300 -b mh-fallback,mh-port
-a -f 7 -r 192.0.2.31:0 -g -w 1
";
    let d = load_rules(text, "t.rules", DirectorConfig::default()).unwrap();
    assert_eq!(save(&d), text);
}
