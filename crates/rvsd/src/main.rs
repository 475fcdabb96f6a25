//! `rvsd`, the director daemon.
//!
//! This build validates configuration only: `rvsd --rules FILE --check`
//! loads an ipvsadm rules file into the core exactly as the daemon will and
//! prints it back as `ipvsadm -Sn` would, or reports the first bad line as
//! `FILE:LINE:COLUMN: message` with exit status 2. The data planes, the
//! control API and the rest of the daemon are built on this core.

use std::process::ExitCode;

use rvs_core::director::DirectorConfig;
use rvs_replay::load_rules;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut rules = None;
    let mut check = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rules" => rules = it.next().cloned(),
            "--check" => check = true,
            other => {
                eprintln!("rvsd: unknown option {other:?}\nusage: rvsd --rules FILE --check");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(path), true) = (rules, check) else {
        eprintln!("usage: rvsd --rules FILE --check (this build runs no data plane yet)");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::from(2);
        }
    };
    match load_rules(&text, &path, DirectorConfig::default()) {
        Ok(d) => {
            print!("{}", rvs_ipvsadm::director::save(&d));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
