//! `rvsadm [--control PATH] <ipvsadm arguments>`: ipvsadm's command line
//! against a running `rvsd`, through its control socket.
//!
//! Exit statuses follow ipvsadm: 0 on success; 2 for a malformed command
//! line (ipvsadm's `fail(2, ...)`), and here also when the daemon cannot be
//! reached; 255 when the director refuses a change (ipvsadm returns the
//! library's -1 from `main`); 1 when a listed service does not exist and
//! when the exchange with the daemon breaks.

use std::io::Read as _;
use std::path::PathBuf;

use rvs_control::{Client, ClientError};
use rvs_core::director::{Director, DirectorConfig};
use rvs_core::model::Forward;
use rvs_ipvsadm::cmd::{ListOptions, ListTarget};
use rvs_ipvsadm::{Command, ListService, list, parse_args, parse_rules};

/// The version line: ipvsadm's shape, so scripts that read the ipvsadm
/// version keep working, with rvs named as what it was compiled with.
pub fn version_line() -> String {
    format!(
        "ipvsadm v1.31 2019/12/24 (compiled with rvs {} and IPVS v1.2.1)\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// `-h`: ipvsadm's synopsis as rvsadm takes it, and the rvs-only commands.
pub fn help() -> String {
    let mut s = version_line();
    s.push_str(
        "Usage:
  rvsadm [--control PATH] -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]
  rvsadm [--control PATH] -D virtual-service
  rvsadm [--control PATH] -C
  rvsadm [--control PATH] -R
  rvsadm [--control PATH] -S [-n]
  rvsadm [--control PATH] -a|e virtual-service -r server-address [options]
  rvsadm [--control PATH] -d virtual-service -r server-address
  rvsadm [--control PATH] -L|l [virtual-service] [options]
  rvsadm [--control PATH] -Z [virtual-service]
  rvsadm [--control PATH] --set tcp tcpfin udp
  rvsadm -h | -v
  rvsadm replay --rules FILE --events FILE [--seed N]
  rvsadm check --rules FILE

The commands and options are ipvsadm's (see ipvsadm(8)); they act on the
running rvsd through its control socket, by default ",
    );
    s.push_str(&rvs_control::default_socket_path().display().to_string());
    s.push_str(
        ".
Addresses are always numeric: rvsadm resolves no names.
",
    );
    s
}

/// What the invocation printed and how it ends.
pub type Outcome = Result<String, (u8, String)>;

/// Runs an ipvsadm invocation (`args` without the program name).
pub fn run(args: &[String]) -> Outcome {
    let (socket, rest) = match args.first().map(String::as_str) {
        Some("--control") => match args.get(1) {
            Some(p) => (PathBuf::from(p), &args[2..]),
            None => return Err((2, "--control needs a value".to_string())),
        },
        Some(a) if a.starts_with("--control=") => {
            (PathBuf::from(&a["--control=".len()..]), &args[1..])
        }
        _ => (rvs_control::default_socket_path(), args),
    };
    let argv: Vec<&str> = rest.iter().map(String::as_str).collect();
    // ipvsadm without arguments lists the table.
    let cmd = if argv.is_empty() {
        Command::List(ListOptions::default())
    } else {
        parse_args(&argv).map_err(|e| (2, e.message))?
    };
    match cmd {
        Command::Help => return Ok(help()),
        Command::Version => return Ok(version_line()),
        _ => {}
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| (1, format!("cannot start the runtime: {e}")))?;
    rt.block_on(against_daemon(&Client::new(socket), cmd))
}

fn client_error(e: ClientError, refused_status: u8) -> (u8, String) {
    match e {
        ClientError::Unreachable { .. } => (2, e.to_string()),
        ClientError::Refused { .. } | ClientError::NotARule(_) => (refused_status, e.to_string()),
        ClientError::Protocol { .. } => (1, e.to_string()),
    }
}

async fn rows(client: &Client) -> Result<Vec<ListService>, (u8, String)> {
    let list = client.services().await.map_err(|e| client_error(e, 1))?;
    list.services
        .iter()
        .map(|s| {
            rvs_control::list_service(s).map_err(|e| {
                (
                    1,
                    format!("unreadable service {} from rvsd: {}", s.id, e.message),
                )
            })
        })
        .collect()
}

async fn against_daemon(client: &Client, cmd: Command) -> Outcome {
    match cmd {
        Command::List(opts) => list_cmd(client, &opts).await,
        Command::Save { .. } => {
            let services: Vec<_> = rows(client)
                .await?
                .into_iter()
                .map(|s| (s.config, s.dests.into_iter().map(|d| d.config).collect()))
                .collect();
            Ok(rvs_ipvsadm::save(&services))
        }
        Command::Restore => restore(client).await,
        Command::StartDaemon(cfg) => {
            client
                .start_daemon(&rvs_api::DaemonSpec::from(&cfg))
                .await
                .map_err(|e| client_error(e, 255))?;
            Ok(String::new())
        }
        Command::StopDaemon { role, .. } => {
            client
                .stop_daemon(role.into())
                .await
                .map_err(|e| client_error(e, 255))?;
            Ok(String::new())
        }
        rule => {
            client
                .apply(std::slice::from_ref(&rule))
                .await
                .map_err(|e| client_error(e, 255))?;
            Ok(String::new())
        }
    }
}

async fn list_cmd(client: &Client, opts: &ListOptions) -> Outcome {
    let f = opts.format();
    Ok(match opts.target() {
        ListTarget::Connections => {
            let conns = client.connections().await.map_err(|e| client_error(e, 1))?;
            let rows: Vec<_> = conns
                .connections
                .iter()
                .map(rvs_control::list_conn)
                .collect();
            list::list_connections(&rows, opts.persistent_conn)
        }
        ListTarget::Timeout => {
            let t = client.timeouts().await.map_err(|e| client_error(e, 1))?;
            list::list_timeout(&t.into())
        }
        ListTarget::Daemon => client
            .daemons()
            .await
            .map_err(|e| client_error(e, 1))?
            .daemons
            .iter()
            .map(rvs_api::DaemonSpec::list_line)
            .collect(),
        ListTarget::Service(k) => {
            let all = rows(client).await?;
            let s = all
                .iter()
                .find(|s| s.config.key == k)
                .ok_or((1, "No such service".to_string()))?;
            list::list_service(s, &f)
        }
        ListTarget::All => list::list_all(&rows(client).await?, &f),
    })
}

/// `-R`: the rules on standard input, checked whole, then applied as one
/// batch. Errors are `-:LINE:COLUMN: message` (`-` names standard input).
async fn restore(client: &Client) -> Outcome {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| (2, format!("-: {e}")))?;
    let lines = parse_rules(&text).map_err(|e| (2, e.with_file("-")))?;
    // As the daemon's proxy plane takes them (a server with no method named
    // is masq), so that `locate` replays what the daemon refused.
    let cmds: Vec<Command> = lines
        .iter()
        .map(|l| rvs_ipvsadm::with_default_method(l.command.clone(), Forward::Masq))
        .collect();
    match client.apply(&cmds).await {
        Ok(()) => Ok(String::new()),
        Err(ClientError::Refused { message, .. }) => {
            // The daemon refused the batch as a whole; find the line at
            // fault by replaying the batch on a copy of its rules.
            let line = locate(client, &cmds)
                .await
                .and_then(|i| lines.get(i))
                .map_or(1, |l| l.line);
            // The column of the line's first word, as for parse errors
            // that blame the whole line.
            let column = text
                .split('\n')
                .nth(line - 1)
                .and_then(|l| l.find(|c: char| !c.is_ascii_whitespace()))
                .map_or(1, |i| i + 1);
            Err((
                255,
                rvs_ipvsadm::error_at(line, column, message).with_file("-"),
            ))
        }
        Err(e) => Err(client_error(e, 255)),
    }
}

/// The index of the first command that fails against a scratch director
/// holding the daemon's current rules, if one does.
async fn locate(client: &Client, cmds: &[Command]) -> Option<usize> {
    let services = rows(client).await.ok()?;
    let mut d = Director::new(DirectorConfig {
        conn_capacity: 0,
        ..Default::default()
    });
    for s in &services {
        d.add_service(s.config.clone()).ok()?;
        // Listed newest first: add oldest first to keep the order.
        for dest in s.dests.iter().rev() {
            d.add_dest(&s.config.key, dest.config).ok()?;
        }
    }
    rvs_ipvsadm::director::dry_run(&d, cmds)
        .err()
        .map(|(i, _)| i)
}
