//! `rvsadm [--control PATH] health [--json]`: the health of every service
//! and real server, from `GET /v1/health`.

use std::fmt::Write;
use std::path::PathBuf;

use rvs_api::HealthList;
use rvs_control::Client;

/// The exit code and message of a failure.
type Outcome = Result<String, (u8, String)>;

/// Runs `health` with its arguments (after the word `health`).
pub fn run(socket: PathBuf, args: &[String]) -> Outcome {
    let mut json = false;
    for a in args {
        match a.as_str() {
            "--json" => json = true,
            other => {
                return Err((
                    2,
                    format!(
                        "health: unknown option {other:?}; usage: rvsadm [--control PATH] health [--json]"
                    ),
                ));
            }
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| (1, format!("cannot start the runtime: {e}")))?;
    let client = Client::new(socket);
    let list = rt
        .block_on(client.health())
        .map_err(|e| (1, e.to_string()))?;
    if json {
        let mut s = serde_json::to_string_pretty(&list).map_err(|e| (1, e.to_string()))?;
        s.push('\n');
        Ok(s)
    } else {
        Ok(table(&list))
    }
}

fn age(s: f64) -> String {
    let s = s.max(0.0) as u64;
    match s {
        0..=119 => format!("{s}s ago"),
        120..=7199 => format!("{}m ago", s / 60),
        7200..=172_799 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// The human table: per service a line with its quorum and sorry server,
/// then one line per server.
pub fn table(list: &HealthList) -> String {
    let mut out = String::new();
    for s in &list.services {
        let sorry = match (&s.sorry_server, s.sorry_in_use) {
            (None, _) => "none".to_string(),
            (Some(a), true) => format!("{a} in use"),
            (Some(a), false) => format!("{a} standing by"),
        };
        let _ = writeln!(
            out,
            "{} quorum {} (alive weight {}, quorum {}, hysteresis {}), sorry server {}",
            s.id,
            if s.quorum_up { "up" } else { "down" },
            s.alive_weight,
            s.quorum,
            s.hysteresis,
            sorry
        );
        let _ = writeln!(
            out,
            "  {:<24} {:<5} {:<9} {:<28} {:<9} Reason",
            "Server", "State", "Weight", "Checks", "Changed"
        );
        for x in &s.servers {
            let weight = format!(
                "{}/{}",
                x.weight,
                x.effective_weight
                    .map_or_else(|| "-".to_string(), |w| w.to_string())
            );
            let checks = if x.checkers.is_empty() {
                "none".to_string()
            } else {
                x.checkers
                    .iter()
                    .map(|c| {
                        let lat = c
                            .last_latency_ms
                            .map_or_else(|| "-".to_string(), |ms| format!("{ms}ms"));
                        format!("{}{}:{lat}", c.kind, if c.up { "" } else { "!" })
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let _ = writeln!(
                out,
                "  {:<24} {:<5} {:<9} {:<28} {:<9} {}",
                x.server,
                if x.up { "up" } else { "down" },
                weight,
                checks,
                x.last_transition_age_s.map_or_else(|| "-".to_string(), age),
                x.last_reason.as_deref().unwrap_or("-")
            );
        }
    }
    let _ = writeln!(out, "probes in flight: {}", list.probes_in_flight);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_api::{CheckerStatus, ServerHealthStatus, ServiceHealthStatus};

    #[test]
    fn table_lists_quorum_servers_and_checks() {
        let list = HealthList {
            probes_in_flight: 2,
            services: vec![ServiceHealthStatus {
                id: "tcp-127.0.0.1-8080".parse().unwrap(),
                quorum_up: false,
                quorum: 2,
                hysteresis: 0,
                alive_weight: 1,
                inhibit_on_failure: false,
                sorry_server: Some("127.0.0.1:9000".into()),
                sorry_in_use: true,
                servers: vec![
                    ServerHealthStatus {
                        server: "127.0.0.1:8081".into(),
                        up: true,
                        weight: 1,
                        effective_weight: None,
                        checkers: vec![CheckerStatus {
                            kind: "tcp".into(),
                            target: "127.0.0.1:8081".into(),
                            up: true,
                            last_latency_ms: Some(3),
                            in_flight: false,
                        }],
                        last_transition_age_s: None,
                        last_transition_unix: None,
                        last_reason: None,
                        failures: Default::default(),
                    },
                    ServerHealthStatus {
                        server: "127.0.0.1:8082".into(),
                        up: false,
                        weight: 2,
                        effective_weight: None,
                        checkers: vec![CheckerStatus {
                            kind: "http".into(),
                            target: "127.0.0.1:8082".into(),
                            up: false,
                            last_latency_ms: None,
                            in_flight: true,
                        }],
                        last_transition_age_s: Some(150.0),
                        last_transition_unix: Some(1.0),
                        last_reason: Some("check failed: refused".into()),
                        failures: Default::default(),
                    },
                ],
            }],
        };
        let t = table(&list);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "tcp-127.0.0.1-8080 quorum down (alive weight 1, quorum 2, hysteresis 0), sorry server 127.0.0.1:9000 in use"
        );
        assert!(
            lines[2].contains("127.0.0.1:8081")
                && lines[2].contains(" up ")
                && lines[2].contains("tcp:3ms")
        );
        assert!(
            lines[3].contains(" down ") && lines[3].contains("2/-") && lines[3].contains("http!:-")
        );
        assert!(lines[3].contains("2m ago") && lines[3].ends_with("check failed: refused"));
        assert_eq!(lines[4], "probes in flight: 2");
    }
}
