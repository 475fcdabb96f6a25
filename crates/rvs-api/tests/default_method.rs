//! A server command that names no method reaches the daemon as such, so
//! that its data plane applies its own default.

use rvs_api::BatchOp;
use rvs_core::model::Forward;
use rvs_ipvsadm::{Command, MethodChoice, parse_args, with_default_method};

fn cmd(line: &str) -> Command {
    parse_args(&line.split_whitespace().collect::<Vec<_>>()).unwrap()
}

fn over_the_wire(c: &Command) -> Command {
    let op = BatchOp::from_command(c).unwrap();
    let json = serde_json::to_string(&op).unwrap();
    let back: BatchOp = serde_json::from_str(&json).unwrap();
    let mut cmds = back.to_commands().unwrap();
    assert_eq!(cmds.len(), 1);
    cmds.remove(0)
}

fn dest_of(c: &Command) -> rvs_core::model::DestConfig {
    match c {
        Command::AddDest { dest, .. } | Command::EditDest { dest, .. } => *dest,
        other => panic!("not a server command: {other:?}"),
    }
}

#[test]
fn an_omitted_method_stays_omitted_and_each_plane_fills_its_own() {
    let c = over_the_wire(&cmd("-a -t 203.0.113.10:80 -r 192.0.2.21:8080"));
    assert!(matches!(
        c,
        Command::AddDest {
            method: MethodChoice::Omitted { port: 8080 },
            ..
        }
    ));
    // The proxy keeps masq with the port written; the packet plane gets
    // ipvsadm's -g, which forces the service port.
    let proxy = dest_of(&with_default_method(c.clone(), Forward::Masq));
    assert_eq!((proxy.forward, proxy.port), (Forward::Masq, 8080));
    let packet = dest_of(&with_default_method(c, Forward::Route));
    assert_eq!((packet.forward, packet.port), (Forward::Route, 80));

    let e = over_the_wire(&cmd("-e -t 203.0.113.10:80 -r 192.0.2.21 -w 3"));
    assert!(matches!(
        e,
        Command::EditDest {
            method: MethodChoice::Omitted { port: 80 },
            ..
        }
    ));
}

#[test]
fn a_named_method_is_sent_as_named() {
    for (line, forward) in [
        ("-a -t 203.0.113.10:80 -r 192.0.2.21:8080 -m", Forward::Masq),
        ("-a -t 203.0.113.10:80 -r 192.0.2.21 -g", Forward::Route),
    ] {
        let op = BatchOp::from_command(&cmd(line)).unwrap();
        assert!(
            !serde_json::to_string(&op)
                .unwrap()
                .contains("default_method")
        );
        let c = over_the_wire(&cmd(line));
        assert!(matches!(
            c,
            Command::AddDest {
                method: MethodChoice::Named,
                ..
            }
        ));
        assert_eq!(dest_of(&c).forward, forward);
    }
}
