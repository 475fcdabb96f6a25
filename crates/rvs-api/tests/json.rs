//! The wire format: JSON round trips, pinned examples of each body, routes,
//! and ipvsadm commands through batch operations and back.

use rvs_api::*;
use rvs_core::director::{Director, DirectorConfig};
use rvs_core::model::{Family, ServiceKey};
use serde::Serialize;
use serde::de::DeserializeOwned;

#[track_caller]
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T) -> String {
    let text = serde_json::to_string(v).unwrap();
    let back: T = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(&back, v, "{text}");
    text
}

fn web_rules() -> Vec<rvs_ipvsadm::Command> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/web.rules"
    ))
    .unwrap();
    rvs_ipvsadm::parse_rules(&text)
        .unwrap()
        .into_iter()
        .map(|r| r.command)
        .collect()
}

#[test]
fn service_spec_wire_form() {
    let json = r#"{"protocol":"udp","address":"[2001:db8::53]:53","scheduler":"mh","sched_flags":["mh-port"],"one_packet":true,"server":[{"address":"[2001:db8:1::1]:53","weight":2},{"address":"[2001:db8:1::2]:53","method":"proxy"}]}"#;
    let spec: ServiceSpec = serde_json::from_str(json).unwrap();
    assert_eq!(serde_json::to_string(&spec).unwrap(), json);
    let (svc, dests) = spec.to_core().unwrap();
    assert!(svc.one_packet);
    assert_eq!(dests.len(), 2);
    assert_eq!(
        ServiceSpec::from_core(&svc, Some(&dests), ProxyProtocol::Off),
        spec
    );
}

#[test]
fn unknown_keys_are_refused() {
    let e = serde_json::from_str::<ServiceSpec>(r#"{"address":"192.0.2.1:80","sched":"rr"}"#)
        .unwrap_err();
    assert!(e.to_string().contains("unknown field `sched`"), "{e}");
    let e = serde_json::from_str::<BatchOp>(r#"{"op":"clear","all":true}"#).unwrap_err();
    assert!(e.to_string().contains("unknown field `all`"), "{e}");
    let e = serde_json::from_str::<BatchOp>(
        r#"{"op":"delete_service","service":"fwm-1","force":true}"#,
    )
    .unwrap_err();
    assert!(e.to_string().contains("unknown field `force`"), "{e}");
    let e = serde_json::from_str::<BatchOp>(r#"{"op":"flush"}"#).unwrap_err();
    assert!(e.to_string().contains("unknown variant `flush`"), "{e}");
}

#[test]
fn spec_errors_name_their_key() {
    let spec: ServiceSpec = serde_json::from_str(
        r#"{"address":"192.0.2.1:80","server":[{"address":"10.0.0.1:80","weight":70000}]}"#,
    )
    .unwrap();
    let e = spec.to_core().unwrap_err();
    assert_eq!(
        ErrorBody::from_spec(&e),
        ErrorBody::new("server[0].weight: Illegal weight specified")
    );
    assert_eq!(
        serde_json::to_string(&ErrorBody::from_spec(&e)).unwrap(),
        r#"{"error":"server[0].weight: Illegal weight specified"}"#
    );
}

#[test]
fn ids_in_paths() {
    for text in [
        "tcp-192.0.2.1-80",
        "udp-2001:db8::1-53",
        "sctp-192.0.2.1-0",
        "fwm-7",
        "fwm6-7",
    ] {
        let id: ServiceId = text.parse().unwrap();
        assert_eq!(id.to_string(), text);
        assert_eq!(round_trip(&id), format!("\"{text}\""));
    }
    assert_eq!(
        "fwm6-7".parse::<ServiceId>().unwrap().0,
        ServiceKey::FwMark {
            family: Family::V6,
            mark: 7
        }
    );
    for bad in [
        "tcp-192.0.2.1",
        "icmp-192.0.2.1-80",
        "fwm-0",
        "tcp-host-80",
        "",
    ] {
        assert!(bad.parse::<ServiceId>().is_err(), "{bad}");
    }
    let s: ServerId = "2001:db8::2-8080".parse().unwrap();
    assert_eq!(s.port, 8080);
    assert_eq!(round_trip(&s), "\"2001:db8::2-8080\"");
    assert!("10.0.0.1".parse::<ServerId>().is_err());
}

#[test]
fn routes_parse_and_print() {
    let id: ServiceId = "tcp-192.0.2.1-80".parse().unwrap();
    let srv: ServerId = "10.0.0.1-8080".parse().unwrap();
    let all = [
        Route::ListServices,
        Route::AddService,
        Route::GetService(id),
        Route::EditService(id),
        Route::DeleteService(id),
        Route::AddServer(id),
        Route::EditServer(id, srv),
        Route::DeleteServer(id, srv),
        Route::Zero,
        Route::GetTimeouts,
        Route::SetTimeouts,
        Route::ListConnections,
        Route::Batch,
        Route::Health,
        Route::ListDaemons,
        Route::StartDaemon,
        Route::StopDaemon(rvs_api::DaemonRole::Master),
    ];
    assert_eq!(all.len(), ENDPOINTS.len());
    assert_eq!(Route::parse(Method::Get, "/health"), Ok(Route::Health));
    assert_eq!(
        Route::parse(Method::Post, "/health"),
        Err(rvs_api::RouteError::MethodNotAllowed)
    );
    for (r, ep) in all.iter().zip(ENDPOINTS) {
        assert_eq!(Route::parse(r.method(), &r.path()), Ok(*r));
        assert_eq!(r.method(), ep.method);
        let pattern = ep.path.replace("{id}", &id.to_string());
        assert_eq!(
            r.path(),
            pattern
                .replace("{server}", &srv.to_string())
                .replace("{role}", "master")
        );
    }
    assert_eq!(
        Route::parse(Method::Get, "/v1/services/?verbose=1"),
        Ok(Route::ListServices)
    );
    assert_eq!(
        Route::parse(Method::Delete, "/v1/batch"),
        Err(RouteError::MethodNotAllowed)
    );
    assert!(matches!(
        Route::parse(Method::Get, "/v2/services"),
        Err(RouteError::NotFound(_))
    ));
    assert!(matches!(
        Route::parse(Method::Get, "/v1/services/tcp-nope-80"),
        Err(RouteError::NotFound(m)) if m.contains("invalid service `tcp-nope-80'")
    ));
    assert_eq!(Method::parse("PUT"), Some(Method::Put));
    assert_eq!(Method::parse("put"), None);
}

#[test]
fn batch_wire_form() {
    let json = r#"{"ops":[{"op":"clear"},{"op":"add_service","service":{"address":"192.0.2.1:80","scheduler":"rr"}},{"op":"add_server","service":"tcp-192.0.2.1-80","server":{"address":"10.0.0.1:80","weight":2}},{"op":"delete_server","service":"tcp-192.0.2.1-80","server":"10.0.0.1-80"},{"op":"zero"},{"op":"set_timeouts","timeouts":{"tcp":60,"tcp_fin":0,"udp":0}}]}"#;
    let batch: Batch = serde_json::from_str(json).unwrap();
    assert_eq!(batch.ops.len(), 6);
    assert_eq!(serde_json::to_string(&batch).unwrap(), json);
    round_trip(&BatchResult { applied: 6 });
    round_trip(&ZeroRequest {
        service: Some("fwm-1".parse().unwrap()),
    });
    assert_eq!(round_trip(&ZeroRequest::default()), "{}");
}

#[test]
fn ipvsadm_rules_survive_batch_ops() {
    for cmd in web_rules() {
        let op = BatchOp::from_command(&cmd).expect("a rule-changing command");
        let op = serde_json::from_str::<BatchOp>(&round_trip(&op)).unwrap();
        assert_eq!(op.to_commands().unwrap(), vec![cmd]);
    }
    assert_eq!(BatchOp::from_command(&rvs_ipvsadm::Command::Help), None);
}

#[test]
fn listings_from_a_director() {
    let mut d = Director::new(DirectorConfig::default());
    for cmd in web_rules() {
        rvs_ipvsadm::director::apply(&mut d, &cmd).unwrap();
    }
    let list = ServiceList {
        services: d
            .services()
            .iter()
            .map(|s| ServiceStatus::from_snapshot(s, ProxyProtocol::Off))
            .collect(),
    };
    let text = round_trip(&list);
    assert!(text.starts_with(r#"{"services":[{"id":"tcp-203.0.113.10-80","service":{"protocol":"tcp","address":"203.0.113.10:80","scheduler":"wrr"},"stats":{"conns":0,"#), "{text}");
    // Each listed service reads back into the same core service.
    for (s, snap) in list.services.iter().zip(d.services()) {
        assert_eq!(s.service.to_service_config().unwrap(), snap.config);
        assert_eq!(s.id.0, snap.config.key);
        for (srv, ds) in s.servers.iter().zip(&snap.dests) {
            assert_eq!(srv.server.to_core(&s.id.0).unwrap(), ds.config);
        }
    }
    let conns = ConnList {
        connections: d.connections().iter().map(ConnStatus::from).collect(),
    };
    round_trip(&conns);
    round_trip(&TimeoutsBody::from(d.timeouts()));
}

#[test]
fn conn_status_wire_form() {
    let c = ConnStatus {
        protocol: 6,
        template: false,
        client: "198.51.100.7:40000".parse().unwrap(),
        virtual_addr: "[2001:db8::1]:80".parse().unwrap(),
        server: "[2001:db8::2]:8080".parse().unwrap(),
        state: "ESTABLISHED".into(),
        expires_ms: 899_000,
        flags: 0x100,
    };
    assert_eq!(
        round_trip(&c),
        r#"{"protocol":6,"template":false,"client":"198.51.100.7:40000","virtual_addr":"[2001:db8::1]:80","server":"[2001:db8::2]:8080","state":"ESTABLISHED","expires_ms":899000,"flags":256}"#
    );
}

#[test]
fn ctl_errors_map_to_statuses() {
    use rvs_core::director::CtlError;
    assert_eq!(status_of(&CtlError::NoSuchService), 404);
    assert_eq!(status_of(&CtlError::DestExists), 409);
    assert_eq!(
        status_of(&CtlError::Invalid(rvs_core::model::ModelError::BadWeight)),
        422
    );
}

#[test]
fn config_diff_becomes_a_batch() {
    let running = rvs_config::parse(
        "[[service]]\naddress = \"192.0.2.1:80\"\n[[service.server]]\naddress = \"10.0.0.1:80\"\n",
        "a",
    )
    .unwrap();
    let wanted = rvs_config::parse(
        "[[service]]\naddress = \"192.0.2.1:80\"\n[[service.server]]\naddress = \"10.0.0.1:80\"\nweight = 4\n",
        "b",
    )
    .unwrap();
    let ops: Vec<BatchOp> = rvs_config::diff(&running.services(), &wanted.services())
        .iter()
        .map(BatchOp::from)
        .collect();
    assert_eq!(
        serde_json::to_string(&ops).unwrap(),
        r#"[{"op":"edit_server","service":"tcp-192.0.2.1-80","server":{"address":"10.0.0.1:80","weight":4}}]"#
    );
}

#[test]
fn start_daemon_commands_become_daemon_specs_and_list_lines() {
    let parse =
        |line: &str| rvs_ipvsadm::parse_args(&line.split_whitespace().collect::<Vec<_>>()).unwrap();
    let rvs_ipvsadm::Command::StartDaemon(cfg) =
        parse("--start-daemon master --mcast-interface eth0 --syncid 1")
    else {
        panic!("not a start-daemon command");
    };
    let spec = rvs_api::DaemonSpec::from(&cfg);
    assert_eq!(spec.role, rvs_api::DaemonRole::Master);
    assert_eq!(
        spec.list_line(),
        "master sync daemon (mcast=eth0, syncid=1)\n"
    );
    let back: rvs_api::DaemonSpec =
        serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
    assert_eq!(back, spec);
    let rvs_ipvsadm::Command::StartDaemon(cfg) = parse(
        "--start-daemon backup --mcast-interface eth1 --syncid 2 --sync-maxlen 1400 --mcast-group 224.0.0.82 --mcast-port 8849 --mcast-ttl 2",
    ) else {
        panic!("not a start-daemon command");
    };
    assert_eq!(
        rvs_api::DaemonSpec::from(&cfg).list_line(),
        "backup sync daemon (mcast=eth1, syncid=2, maxlen=1400, group=224.0.0.82, port=8849, ttl=2)\n"
    );
}
