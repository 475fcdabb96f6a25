//! Commands reaching the engine with no forwarding method named: masq with
//! the port written with `-r`, where ipvsadm alone would send `-g` and the
//! service port.

use std::net::Ipv4Addr;

use rvs_api::Control;
use rvs_core::model::Forward;
use rvs_ipvsadm::{Command, MethodChoice, parse_args};
use rvs_proxy::{Engine, EngineConfig};

fn cmd(line: &str) -> Command {
    parse_args(&line.split_whitespace().collect::<Vec<_>>()).unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn unnamed_method_is_masq_and_keeps_the_port() {
    let mut cfg = EngineConfig::default();
    cfg.proxy.threads = 1;
    let e = Engine::new(cfg);
    let vip = format!("127.0.0.1:{}", free_port());
    let add = cmd(&format!("-a -t {vip} -r 127.0.0.2:8080 -w 2"));
    assert!(matches!(
        add,
        Command::AddDest {
            method: MethodChoice::Omitted { port: 8080 },
            ..
        }
    ));
    e.apply(&[cmd(&format!("-A -t {vip} -s rr")), add]).unwrap();
    let d = e.services()[0].dests[0].config;
    assert_eq!((d.forward, d.port, d.weight), (Forward::Masq, 8080, 2));
    // -e without a method keeps masq, and the port it names.
    e.apply(&[cmd(&format!("-e -t {vip} -r 127.0.0.2:8080 -w 5"))])
        .unwrap();
    let d = e.services()[0].dests[0].config;
    assert_eq!((d.forward, d.port, d.weight), (Forward::Masq, 8080, 5));
    // Named, -g is still refused.
    let err = e
        .apply(&[cmd(&format!("-e -t {vip} -r 127.0.0.2:8080 -g"))])
        .unwrap_err();
    assert!(err.message.contains("packet data plane"), "{err}");
}
