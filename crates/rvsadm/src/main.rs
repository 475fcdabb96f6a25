//! `rvsadm`: the operator's tool.
//!
//! `rvsadm replay --rules FILE --events FILE [--seed N]` runs the offline
//! simulator of the core (see the `rvs-replay` crate); its exit status is 0,
//! or 2 when a file cannot be used (reported as `FILE:LINE:COLUMN: message`,
//! nothing applied). `rvsadm check --rules FILE` validates a rules file and
//! prints it back as `ipvsadm -Sn` would.
//!
//! Any other invocation whose first word is an option is ipvsadm's command
//! line, sent to the running `rvsd` (see [`ipvsadm`]):
//! `rvsadm [--control PATH] -Ln`, `rvsadm -A -t 192.0.2.1:80 -s rr`, ...

mod health;
mod ipvsadm;

use std::process::ExitCode;

use rvs_core::director::DirectorConfig;
use rvs_replay::{Replay, load_rules, parse_events};

const USAGE: &str = "usage:
  rvsadm [--control PATH] <ipvsadm command and options>  (rvsadm -h)
  rvsadm [--control PATH] health [--json]
  rvsadm replay --rules FILE --events FILE [--seed N]
  rvsadm check --rules FILE";

struct Opts {
    rules: Option<String>,
    events: Option<String>,
    seed: u64,
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        rules: None,
        events: None,
        seed: 0,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--rules" => o.rules = Some(value("--rules")?),
            "--events" => o.events = Some(value("--events")?),
            "--seed" => {
                let v = value("--seed")?;
                o.seed = v
                    .parse()
                    .map_err(|_| format!("--seed takes a number, not {v:?}"))?;
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(o)
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

fn replay(o: &Opts) -> Result<String, (u8, String)> {
    let rules_path = o
        .rules
        .as_deref()
        .ok_or((2, "replay needs --rules FILE".to_string()))?;
    let events_path = o
        .events
        .as_deref()
        .ok_or((2, "replay needs --events FILE".to_string()))?;
    let rules = read(rules_path).map_err(|e| (2, e))?;
    let events = read(events_path).map_err(|e| (2, e))?;
    let cfg = DirectorConfig {
        rng_seed: o.seed,
        ..DirectorConfig::default()
    };
    let director = load_rules(&rules, rules_path, cfg).map_err(|e| (2, e.0))?;
    let events = parse_events(&events).map_err(|e| (2, e.with_file(events_path)))?;
    let mut r = Replay::new(director);
    r.run(&events);
    eprint!("{}", r.stderr());
    Ok(r.stdout().to_string())
}

fn check(o: &Opts) -> Result<String, (u8, String)> {
    let rules_path = o
        .rules
        .as_deref()
        .ok_or((2, "check needs --rules FILE".to_string()))?;
    let rules = read(rules_path).map_err(|e| (2, e))?;
    let d = load_rules(&rules, rules_path, DirectorConfig::default()).map_err(|e| (2, e.0))?;
    Ok(rvs_ipvsadm::director::save(&d))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(sub) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    // `health` may follow `--control PATH`.
    let (socket, words) = match (sub.as_str(), args.get(1)) {
        ("--control", Some(p)) => (Some(std::path::PathBuf::from(p)), &args[2..]),
        (a, _) if a.starts_with("--control=") => (
            Some(std::path::PathBuf::from(&a["--control=".len()..])),
            &args[1..],
        ),
        _ => (None, &args[..]),
    };
    let result = if words.first().is_some_and(|w| w == "health") {
        health::run(
            socket.unwrap_or_else(rvs_control::default_socket_path),
            &words[1..],
        )
    } else if sub.starts_with('-') {
        ipvsadm::run(&args)
    } else {
        subcommand(sub, &args[1..])
    };
    match result {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err((code, msg)) => {
            eprintln!("{msg}");
            ExitCode::from(code)
        }
    }
}

/// `replay` and `check`, and the message for an unknown word.
fn subcommand(sub: &str, rest: &[String]) -> Result<String, (u8, String)> {
    match parse_opts(rest) {
        Err(e) => Err((2, e)),
        Ok(o) => match sub {
            "replay" => replay(&o),
            "check" => check(&o),
            other => Err((
                2,
                format!(
                    "unknown command {other:?}: ipvsadm commands start with an option (rvsadm -h)\n{USAGE}"
                ),
            )),
        },
    }
}
