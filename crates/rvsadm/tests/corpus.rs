//! Real ipvsadm listings from `../shared/corpus/listings/` printed by the
//! built `rvsadm` binary: each table is rebuilt in a control server run by
//! this test process (`rvs_control::serve` over a `DirectorControl`) with
//! ipvsadm commands sent through `rvsadm`, its connection counts and
//! counters made by driving the director with packets, and the output of
//! `rvsadm -Ln ...` compared with the file: byte for byte where the corpus
//! index says its whitespace is exact, ignoring trailing spaces where it
//! says they were stripped.
//!
//! Files not compared here, and why:
//! - `node_exporter_proc_net_ip_vs.txt`, `node_exporter_proc_net_ip_vs_stats.txt`,
//!   `octavia_proc_net_ip_vs_mixed.txt`, `procfs_proc_net_ip_vs_ipv6.txt`:
//!   the kernel's `/proc/net/ip_vs*` formats (hex addresses), which
//!   ipvsadm does not print.
//! - `alibaba_lvs_issue15_l_fullnat.txt`, `alibaba_lvs_issue29_lnc_hexstate.txt`,
//!   `dpvs_containerized_ln_ipv6.txt`, `dpvs_tc_ln_stats.txt`: forks of
//!   IPVS (FullNat forwarding, `conhash`, `conn-timeout`, a hex state
//!   column, version 0.0.0) that mainline ipvsadm cannot print.
//! - `kube-router_issue415_l_hostnames.txt`: `ipvsadm -L` without `-n`,
//!   with host and service names; rvsadm resolves no names.
//! - `k8s_blog_ipvs_body_portmap_malformed.txt`: a documentation typo (a
//!   server row without its InActConn column) that no ipvsadm prints.
//! - `kube-router_pr160_ln_stats.txt`: cut off after its last complete
//!   line, so the service totals include servers the file does not show;
//!   no table both lists those rows and has those totals. It is compared
//!   through the formatter in `rvs-ipvsadm/tests/list.rs`.
//! - `todevops_ipvsadm_help_v1.27.txt`: ipvsadm 1.27's `--help`, not a
//!   listing; rvsadm's `-h` names its own commands.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use rvs_api::Control;
use rvs_core::director::{ConnRef, Director, PacketInfo, Verdict};
use rvs_core::model::Protocol;
use rvs_core::state::TcpFlags;

mod common;
use common::Daemon;

/// A corpus listing without its `# source:` line.
fn corpus(name: &str) -> String {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/listings"
    ));
    assert!(
        dir.is_dir(),
        "the shared corpus is missing: {} (these tests need /work/shared)",
        dir.display()
    );
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("corpus file {}: {e}", path.display()));
    let (first, rest) = text.split_once('\n').unwrap();
    assert!(first.starts_with("# source:"), "{name}");
    rest.to_string()
}

fn strip_trailing(s: &str) -> String {
    s.lines().map(|l| format!("{}\n", l.trim_end())).collect()
}

fn zero_clock() -> u64 {
    0
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn packet(client: &str, vip: &str, tcp: TcpFlags, len: u32) -> PacketInfo {
    let (c, cp) = client.rsplit_once(':').unwrap();
    let (v, vp) = vip.rsplit_once(':').unwrap();
    PacketInfo {
        proto: Protocol::Tcp,
        src: ip(c),
        sport: cp.parse().unwrap(),
        dst: ip(v),
        dport: vp.parse().unwrap(),
        fwmark: 0,
        tcp,
        sctp: rvs_core::sctp::SctpEvent::Data,
        len,
    }
}

/// A client's SYN: a new connection.
fn syn(d: &mut Director, client: &str, vip: &str, now: u64) -> ConnRef {
    match d.inbound(&packet(client, vip, TcpFlags::SYN, 52), now) {
        Verdict::Forward(f) => f.conn,
        v => panic!("{client} -> {vip}: {v:?}"),
    }
}

/// A full handshake through a masq director: ESTABLISHED (ActiveConn).
fn established(d: &mut Director, client: &str, vip: &str, now: u64) -> ConnRef {
    let c = syn(d, client, vip, now);
    d.outbound(c, TcpFlags::SYN_ACK, 52, now);
    d.inbound(&packet(client, vip, TcpFlags::ACK, 52), now);
    c
}

/// A connection the client has closed and the server too: TIME_WAIT
/// (InActConn).
fn closed(d: &mut Director, client: &str, vip: &str, now: u64) -> ConnRef {
    let c = established(d, client, vip, now);
    d.inbound(&packet(client, vip, TcpFlags::FIN_ACK, 52), now);
    d.outbound(c, TcpFlags::ACK, 52, now);
    d.outbound(c, TcpFlags::FIN_ACK, 52, now);
    d.inbound(&packet(client, vip, TcpFlags::ACK, 52), now);
    c
}

#[test]
fn feiskyer_handbook_wlc() {
    let d = Daemon::start("feiskyer", zero_clock);
    d.all(&[
        "-A -t 10.0.0.185:80 -s wlc",
        "-a -t 10.0.0.185:80 -r 172.17.0.3:80 -m",
        "-a -t 10.0.0.185:80 -r 172.17.0.4:80 -m",
    ]);
    // wlc sends the second connection to the other server.
    d.ctl.with(|dir| {
        closed(dir, "192.0.2.1:40001", "10.0.0.185:80", 0);
        closed(dir, "192.0.2.2:40002", "10.0.0.185:80", 0);
    });
    // Exact in the handbook but for the stripped trailing spaces.
    assert_eq!(
        strip_trailing(&d.ok("-Ln")),
        corpus("feiskyer_handbook_ln_wlc.txt")
    );
}

#[test]
fn k8s_proxy_readme() {
    let d = Daemon::start("k8sproxy", zero_clock);
    d.all(&[
        "-A -t 10.0.0.1:443 -s rr -p 10800",
        "-a -t 10.0.0.1:443 -r 192.168.0.1:6443 -m",
        "-A -t 10.0.0.10:53 -s rr",
        "-a -t 10.0.0.10:53 -r 172.17.0.2:53 -m",
        "-A -u 10.0.0.10:53 -s rr",
        "-a -u 10.0.0.10:53 -r 172.17.0.2:53 -m",
    ]);
    // The persistence template this makes counts in no column.
    d.ctl
        .with(|dir| established(dir, "192.0.2.7:51000", "10.0.0.1:443", 0));
    assert_eq!(
        strip_trailing(&d.ok("-Ln")),
        corpus("k8s_proxy_ipvs_readme_ln.txt")
    );
}

#[test]
fn lvscare_readme_and_weight_zero() {
    let d = Daemon::start("lvscare", zero_clock);
    d.all(&[
        "-A -t 169.254.0.1:80 -s rr",
        "-a -t 169.254.0.1:80 -r 127.0.0.1:8080 -m",
        "-a -t 169.254.0.1:80 -r 127.0.0.1:8081 -m",
        "-a -t 169.254.0.1:80 -r 127.0.0.1:8082 -m",
    ]);
    // rr: six closed connections, two a server.
    d.ctl.with(|dir| {
        for i in 0..6 {
            closed(
                dir,
                &format!("192.0.2.9:{}", 40000 + i),
                "169.254.0.1:80",
                0,
            );
        }
    });
    assert_eq!(
        strip_trailing(&d.ok("-Ln")),
        corpus("lvscare_readme_ln.txt")
    );

    let d = Daemon::start("lvscare0", zero_clock);
    d.all(&[
        "-A -t 169.254.0.1:80 -s rr",
        "-a -t 169.254.0.1:80 -r 127.0.0.1:8081 -m",
        "-a -t 169.254.0.1:80 -r 127.0.0.1:8082 -m",
        "-a -t 169.254.0.1:80 -r 127.0.0.1:8083 -m",
        // Graceful termination: the server is quiesced, not deleted.
        "-e -t 169.254.0.1:80 -r 127.0.0.1:8083 -m -w 0",
    ]);
    assert_eq!(
        strip_trailing(&d.ok("-Ln")),
        corpus("lvscare_readme_ln_weight0.txt")
    );
}

#[test]
fn k8s_blog_persistent_service_without_servers() {
    let d = Daemon::start("k8sblog", zero_clock);
    d.all(&["-A -t 10.102.128.4:3080 -s rr -p 10800"]);
    assert_eq!(
        d.ok("-Ln"),
        corpus("k8s_blog_ipvs_ln_persistent_noreals.txt")
    );
}

#[test]
fn kube_router_pod_toolbox() {
    let d = Daemon::start("podtoolbox", zero_clock);
    d.all(&[
        // kube-router asked for persistence with a zero netmask: every
        // client shares one template, and ipvsadm prints the mask.
        "-A -t 10.3.0.1:443 -s rr -p 10800 -M 0.0.0.0",
        "-a -t 10.3.0.1:443 -r 10.10.3.2:443 -m",
        "-A -t 10.3.0.10:53 -s rr",
        "-a -t 10.3.0.10:53 -r 10.2.0.2:53 -m",
        "-A -t 10.3.0.15:2379 -s rr",
        "-a -t 10.3.0.15:2379 -r 10.10.3.3:2379 -m",
        "-A -t 10.3.0.155:2379 -s rr",
        "-a -t 10.3.0.155:2379 -r 10.10.3.3:2379 -m",
        "-A -u 10.3.0.10:53 -s rr",
        "-a -u 10.3.0.10:53 -r 10.2.0.2:53 -m",
    ]);
    d.ctl.with(|dir| {
        for i in 0..45 {
            established(dir, &format!("10.2.0.5:{}", 50000 + i), "10.3.0.15:2379", 0);
        }
    });
    assert_eq!(
        strip_trailing(&d.ok("-Ln")),
        corpus("kube-router_pod-toolbox_ln.txt")
    );
}

#[test]
fn opsnull_nodeports_with_trailing_spaces() {
    let d = Daemon::start("opsnull", zero_clock);
    let mut cmds = vec![];
    let mut svc = |vip: &str, persistent: bool, servers: &[&str]| {
        let p = if persistent { " -p 10800" } else { "" };
        cmds.push(format!("-A -t {vip} -s rr{p}"));
        for s in servers {
            cmds.push(format!("-a -t {vip} -r {s} -m"));
        }
    };
    svc(
        "10.253.102.0:32429",
        false,
        &[
            "10.253.7.7:80",
            "10.253.35.7:80",
            "10.253.56.7:80",
            "10.253.102.4:80",
        ],
    );
    svc("10.253.102.0:32767", false, &["10.253.35.2:8443"]);
    svc("10.253.102.1:32767", false, &["10.253.35.2:8443"]);
    svc(
        "10.254.0.1:443",
        true,
        &["172.16.16.81:6443", "172.16.16.82:6443"],
    );
    svc("10.254.0.2:53", false, &["10.253.7.5:53", "10.253.35.5:53"]);
    svc("10.254.9.36:443", false, &["10.253.35.2:8443"]);
    svc(
        "10.254.20.57:1",
        false,
        &["172.16.16.81:1", "172.16.16.82:1", "172.16.16.83:1"],
    );
    d.all(&cmds.iter().map(String::as_str).collect::<Vec<_>>());
    let out = d.ok("-Ln");
    let expected = corpus("opsnull_issue251_ln_nodeport.txt");
    // Byte for byte, but for the last line: the issue text was cut there,
    // and its trailing spaces with it.
    let (out_head, out_last) = out.trim_end_matches('\n').rsplit_once('\n').unwrap();
    let (exp_head, exp_last) = expected.trim_end_matches('\n').rsplit_once('\n').unwrap();
    assert_eq!(out_head, exp_head);
    assert_eq!(out_last.trim_end(), exp_last);
    assert!(out_last.ends_with("         "), "{out_last:?}");
}

#[test]
fn ctdb_portless_persistent_body() {
    let d = Daemon::start("ctdb", zero_clock);
    // The rules ctdb's LVS event script gives ipvsadm (rules/ctdb_91_lvs_001
    // in the corpus): port-less persistent services, direct routing.
    d.all(&[
        "-A -t 10.1.1.201 -s lc -p 1999999",
        "-A -u 10.1.1.201 -s lc -p 1999999",
        "-a -t 10.1.1.201 -r 192.168.1.1 -g",
        "-a -u 10.1.1.201 -r 192.168.1.1 -g",
        "-a -t 10.1.1.201 -r 192.168.1.2 -g",
        "-a -u 10.1.1.201 -r 192.168.1.2 -g",
        "-a -t 10.1.1.201 -r 192.168.1.3 -g",
        "-a -u 10.1.1.201 -r 192.168.1.3 -g",
        "-a -u 10.1.1.201:0 -r 127.0.0.1 -g",
    ]);
    let out = d.ok("-Ln");
    let (head, body) = out.split_at(out.match_indices('\n').nth(2).map(|(i, _)| i + 1).unwrap());
    assert_eq!(
        head,
        "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
    );
    // The file is the body of ctdb's emulated listing (no titles), ends
    // with its heredoc's EOF line, and shows 127.0.0.1 as `Local`, which
    // only old kernels reported: current ones list the server as it was
    // added (`-g`, Route).
    let expected = corpus("ctdb_91_lvs_001_expected_body.txt")
        .strip_suffix("EOF\n")
        .expect("heredoc end")
        .replace("Local  ", "Route  ");
    assert_eq!(body, expected);
}

#[test]
fn k8s_issue_timeouts() {
    let d = Daemon::start("timeout", zero_clock);
    assert_eq!(
        d.ok("-Ln --timeout"),
        corpus("k8s_issue84041_ln_timeout.txt")
    );
}

/// `total` bytes over `n` packets: equal lengths, the remainder on the last.
fn lengths(total: u64, n: u64) -> impl Iterator<Item = u32> {
    let each = total / n;
    (0..n).map(move |i| {
        let l = if i + 1 == n {
            total - each * (n - 1)
        } else {
            each
        };
        u32::try_from(l).unwrap()
    })
}

/// Drives one masq service with `conns` connections, and `inpkts` packets
/// of `inbytes` in all from the clients and `outpkts` of `outbytes` from
/// the server.
fn traffic(d: &mut Director, vip: &str, conns: u64, c: [u64; 4]) {
    let [inpkts, outpkts, inbytes, outbytes] = c;
    let mut inl = lengths(inbytes, inpkts);
    let mut first = None;
    for i in 0..conns {
        let client = format!("198.51.100.{}:{}", 1 + i / 200, 30000 + i);
        let p = packet(&client, vip, TcpFlags::SYN, inl.next().unwrap());
        let Verdict::Forward(f) = d.inbound(&p, 0) else {
            panic!("{client}")
        };
        first.get_or_insert((client, f.conn));
    }
    let (client, conn) = first.unwrap();
    for l in inl {
        d.inbound(&packet(&client, vip, TcpFlags::ACK, l), 0);
    }
    for l in lengths(outbytes, outpkts) {
        d.outbound(conn, TcpFlags::ACK, l, 0);
    }
}

#[test]
fn diamond_stats_exact_is_byte_exact() {
    let d = Daemon::start("diamond", zero_clock);
    d.all(&[
        "-A -t 172.16.1.56:80 -s wlc",
        "-a -t 172.16.1.56:80 -r 10.68.15.66:80 -m",
        "-A -t 172.16.1.56:443 -s wlc",
        "-a -t 172.16.1.56:443 -r 10.68.15.66:443 -m",
    ]);
    d.ctl.with(|dir| {
        traffic(
            dir,
            "172.16.1.56:80",
            116,
            [582893, 578642, 45293116, 826814146],
        );
        traffic(dir, "172.16.1.56:443", 59, [469, 469, 57558, 216873]);
    });
    assert_eq!(
        d.ok("--list --stats --numeric --exact"),
        corpus("diamond_ipvsadm_stats_exact.txt")
    );
}

static KEEPALIVED_NOW: AtomicU64 = AtomicU64::new(0);

fn keepalived_clock() -> u64 {
    KEEPALIVED_NOW.load(Ordering::SeqCst)
}

#[test]
fn keepalived_connection_table() {
    let d = Daemon::start("lnc", keepalived_clock);
    // An ESTABLISHED timeout long enough for the 133-minute entries.
    const TCP_TIMEOUT: u64 = 9000;
    d.all(&[
        "-A -t 10.40.25.43:18000 -s rr",
        "-a -t 10.40.25.43:18000 -r 10.40.25.16:18000 -m",
        "-a -t 10.40.25.43:18000 -r 10.40.25.28:18000 -m",
        &format!("--set {TCP_TIMEOUT} 0 0"),
    ]);
    let body = corpus("keepalived_issue1138_lcn.txt");
    // (client, server, seconds left) in the listing's order, which is the
    // order the connections were made in.
    let rows: Vec<(String, String, u64)> = body
        .lines()
        .skip(2)
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(
                (w[0], w[2], w[4]),
                ("TCP", "ESTABLISHED", "10.40.25.43:18000")
            );
            let (m, s) = w[1].split_once(':').unwrap();
            let left = m.parse::<u64>().unwrap() * 60 + s.parse::<u64>().unwrap();
            (w[3].to_string(), w[5].to_string(), left)
        })
        .collect();
    assert_eq!(rows.len(), 12);
    let vip = "10.40.25.43:18000";
    for (client, server, _) in &rows {
        // Only the intended server has weight: the scheduler picks it.
        for other in ["10.40.25.16:18000", "10.40.25.28:18000"] {
            let w = u32::from(other == server);
            let c = rvs_ipvsadm::parse_args(
                &format!("-e -t {vip} -r {other} -m -w {w}")
                    .split_whitespace()
                    .collect::<Vec<_>>(),
            )
            .unwrap();
            d.ctl.apply(&[c]).unwrap();
        }
        d.ctl.with(|dir| established(dir, client, vip, 0));
    }
    // Each connection's last packet at the time that leaves it its
    // seconds at the end (TCP_TIMEOUT s), in time order.
    let mut by_time: Vec<usize> = (0..rows.len()).collect();
    by_time.sort_by_key(|&i| rows[i].2);
    for i in by_time {
        let now = rows[i].2 * 1000;
        KEEPALIVED_NOW.store(now, Ordering::SeqCst);
        d.ctl.with(|dir| {
            dir.inbound(&packet(&rows[i].0, vip, TcpFlags::ACK, 52), now);
        });
    }
    KEEPALIVED_NOW.store(TCP_TIMEOUT * 1000, Ordering::SeqCst);
    assert_eq!(d.ok("-Lnc"), body);
}
