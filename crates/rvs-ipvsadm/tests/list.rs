//! `ipvsadm -L` formats: the reference's examples and real listings.

use std::net::IpAddr;
use std::path::PathBuf;

use rvs_core::model::{
    DestConfig, Family, Forward, Netmask, Protocol, SchedFlags, SchedulerKind, ServiceConfig,
    ServiceKey, Timeouts, Tunnel, TunnelCsum, TunnelType,
};
use rvs_ipvsadm::list::{
    Counters5, ListConn, ListDest, ListFormat, ListService, expire_text, largenum, list_all,
    list_connections, list_service, list_timeout,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn svc(proto: Protocol, a: &str, port: u16, sched: SchedulerKind) -> ServiceConfig {
    let mut s = ServiceConfig::new(ServiceKey::Addr {
        proto,
        addr: ip(a),
        port,
    });
    s.scheduler = sched;
    s
}

fn dest(a: &str, port: u16, forward: Forward, weight: u32, active: u32, inactive: u32) -> ListDest {
    let mut d = ListDest::new(DestConfig {
        addr: ip(a),
        port,
        forward,
        weight,
        u_threshold: 0,
        l_threshold: 0,
    });
    d.active = active;
    d.inactive = inactive;
    d
}

fn c5(v: [u64; 5]) -> Counters5 {
    Counters5 {
        conns: v[0],
        inpkts: v[1],
        outpkts: v[2],
        inbytes: v[3],
        outbytes: v[4],
    }
}

fn default_fmt() -> ListFormat {
    ListFormat::default()
}

fn strip_trailing(s: &str) -> String {
    s.lines().map(|l| format!("{}\n", l.trim_end())).collect()
}

/// A corpus listing without its `# source:` line.
fn corpus(name: &str) -> String {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/listings"
    ));
    assert!(
        dir.is_dir(),
        "the shared corpus is missing: {} (this test needs /work/shared)",
        dir.display()
    );
    let text = std::fs::read_to_string(dir.join(name)).unwrap();
    let (first, rest) = text.split_once('\n').unwrap();
    assert!(first.starts_with("# source:"), "{name}");
    let mut body = rest.to_string();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    body
}

/// The reference's `-Ln` example, in the order the kernel might hold it.
fn reference_services() -> Vec<ListService> {
    let mut tls = svc(Protocol::Tcp, "203.0.113.10", 443, SchedulerKind::Rr);
    tls.persistence = Some(360);
    tls.netmask = Netmask::V4(0xffff_ff00);
    let mut dns = svc(Protocol::Udp, "203.0.113.53", 53, SchedulerKind::Rr);
    dns.one_packet = true;
    let mut fwm = ServiceConfig::new(ServiceKey::FwMark {
        family: Family::V4,
        mark: 7,
    });
    fwm.scheduler = SchedulerKind::Mh;
    fwm.sched_flags = SchedFlags(3);
    fwm.persistence = Some(300);
    let mut web = ListService::new(
        svc(Protocol::Tcp, "203.0.113.10", 80, SchedulerKind::Wlc),
        vec![
            dest("10.0.0.12", 8080, Forward::Masq, 2, 25, 77),
            dest("10.0.0.11", 8080, Forward::Masq, 1, 12, 40),
        ],
    );
    web.stats = c5([1234, 56789, 51234, 4567890, 987_654_321]);
    web.dests[1].stats = c5([617, 28400, 25600, 2283945, 493_827_160]);
    web.dests[0].stats = c5([617, 28389, 25634, 2283945, 493_827_161]);
    vec![
        ListService::new(fwm, vec![dest("10.0.2.1", 0, Forward::Route, 1, 0, 0)]),
        ListService::new(
            dns,
            vec![dest(
                "10.0.1.1",
                53,
                Forward::Tunnel(Tunnel::default()),
                1,
                0,
                117,
            )],
        ),
        ListService::new(tls, vec![dest("10.0.0.11", 443, Forward::Route, 1, 3, 9)]),
        web,
    ]
}

#[test]
fn reference_default_listing_with_trailing_spaces() {
    let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  203.0.113.10:80 wlc
  -> 10.0.0.11:8080               Masq    1      12         40        
  -> 10.0.0.12:8080               Masq    2      25         77        
TCP  203.0.113.10:443 rr persistent 360 mask 255.255.255.0
  -> 10.0.0.11:443                Route   1      3          9         
UDP  203.0.113.53:53 rr ops
  -> 10.0.1.1:53                  Tunnel  1      0          117       
FWM  7 mh (mh-fallback,mh-port) persistent 300
  -> 10.0.2.1:0                   Route   1      0          0         
";
    assert_eq!(list_all(&reference_services(), &default_fmt()), expected);
}

#[test]
fn reference_stats_listing() {
    let web = reference_services().pop().unwrap();
    let f = ListFormat {
        stats: true,
        ..ListFormat::default()
    };
    let mut one = web.clone();
    one.dests.truncate(1);
    one.dests[0] = web.dests[1].clone();
    let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  203.0.113.10:80                  1234    56789    51234  4567890  987654K
  -> 10.0.0.11:8080                    617    28400    25600  2283945  493827K
";
    assert_eq!(list_all(&[one], &f), expected);
}

#[test]
fn single_service_has_titles_but_no_version_line() {
    let web = reference_services().pop().unwrap();
    assert_eq!(
        list_service(&web, &default_fmt()),
        "\
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  203.0.113.10:80 wlc
  -> 10.0.0.11:8080               Masq    1      12         40        
  -> 10.0.0.12:8080               Masq    2      25         77        
"
    );
}

#[test]
fn largenum_scales_and_exact() {
    assert_eq!(largenum(0, false), "        0");
    assert_eq!(largenum(99_999_999, false), " 99999999");
    assert_eq!(largenum(100_000_000, false), "  100000K");
    assert_eq!(largenum(999_999_999, false), "  999999K");
    assert_eq!(largenum(1_000_000_000, false), "    1000M");
    assert_eq!(largenum(99_999_999_999, false), "   99999M");
    assert_eq!(largenum(100_000_000_000, false), "     100G");
    assert_eq!(largenum(100_000_000_000_000, false), "     100T");
    assert_eq!(largenum(12345678, true), " 12345678");
    assert_eq!(largenum(123456789, true), " 123456789");
    assert_eq!(largenum(u64::MAX, true), " 18446744073709551615");
}

#[test]
fn rate_thresholds_persistent_and_tunnel_formats() {
    let mut s = ListService::new(
        svc(Protocol::Tcp, "192.0.2.1", 80, SchedulerKind::Rr),
        vec![
            dest("10.0.0.1", 80, Forward::Masq, 3, 4, 5),
            dest(
                "10.0.0.2",
                80,
                Forward::Tunnel(Tunnel {
                    kind: TunnelType::Gue,
                    port: 6080,
                    csum: TunnelCsum::RemCsum,
                }),
                1,
                0,
                0,
            ),
            dest(
                "10.0.0.3",
                80,
                Forward::Tunnel(Tunnel {
                    kind: TunnelType::Gre,
                    port: 0,
                    csum: TunnelCsum::Csum,
                }),
                1,
                0,
                0,
            ),
        ],
    );
    s.rates = c5([12, 340, 300, 123_456_789, 45000]);
    s.dests[0].rates = c5([12, 340, 300, 123_456_789, 45000]);
    s.dests[0].persistent = 7;
    s.dests[0].config.u_threshold = 100;
    s.dests[0].config.l_threshold = 75;
    let f = |g: fn(&mut ListFormat)| {
        let mut f = ListFormat::default();
        g(&mut f);
        list_service(&s, &f)
    };
    assert_eq!(
        f(|f| f.rate = true),
        "\
Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
  -> RemoteAddress:Port
TCP  192.0.2.1:80                       12      340      300  123456K    45000
  -> 10.0.0.1:80                        12      340      300  123456K    45000
  -> 10.0.0.2:80                         0        0        0        0        0
  -> 10.0.0.3:80                         0        0        0        0        0
"
    );
    assert_eq!(
        f(|f| f.thresholds = true),
        "\
Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  192.0.2.1:80 rr
  -> 10.0.0.1:80                  100        75         4          5         
  -> 10.0.0.2:80                  0          0          0          0         
  -> 10.0.0.3:80                  0          0          0          0         
"
    );
    assert_eq!(
        f(|f| f.persistent_conn = true),
        "\
Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  192.0.2.1:80 rr
  -> 10.0.0.1:80                  3         7           4          5         
  -> 10.0.0.2:80                  1         0           0          0         
  -> 10.0.0.3:80                  1         0           0          0         
"
    );
    assert_eq!(
        f(|f| f.tun_info = true),
        "\
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn
TCP  192.0.2.1:80 rr
  -> 10.0.0.1:80                  Masq    n/a           3      4          5         
  -> 10.0.0.2:80                  Tunnel  gue:6080:r+c  1      0          0         
  -> 10.0.0.3:80                  Tunnel  gre:+c        1      0          0         
"
    );
}

#[test]
fn ipv6_names_and_flags() {
    let mut s6 = svc(Protocol::Udp, "2001:db8::53", 53, SchedulerKind::Sh);
    s6.sched_flags = SchedFlags(1);
    s6.persistence = Some(30);
    s6.netmask = Netmask::V6(64);
    s6.pe_name = Some("sip".into());
    let l = ListService::new(
        s6,
        vec![dest(
            "2001:db8:ffff:ffff:ffff:ffff:ffff:1",
            53,
            Forward::Masq,
            1,
            0,
            0,
        )],
    );
    assert_eq!(
        list_service(&l, &default_fmt()),
        "\
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
UDP  [2001:db8::53]:53 sh (sh-fallback) persistent 30 mask 64 pe sip
  -> [2001:db8:ffff:ffff:ffff:ffff:ffff:1]:53 Masq    1      0          0         
"
    );
    let f6 = ServiceConfig::new(ServiceKey::FwMark {
        family: Family::V6,
        mark: 4,
    });
    assert!(
        list_service(&ListService::new(f6, vec![]), &default_fmt()).ends_with("FWM  4 IPv6 wlc\n")
    );
}

#[test]
fn connections_and_timeouts() {
    let conn = |proto: &str, c: &str, cp, v: &str, vp, d: &str, dp, st: &str, exp| ListConn {
        proto_name: proto.into(),
        caddr: ip(c),
        cport: cp,
        vaddr: ip(v),
        vport: vp,
        daddr: ip(d),
        dport: dp,
        state: st.into(),
        expires_secs: exp,
        pe: None,
    };
    let rows = vec![
        conn(
            "TCP",
            "198.51.100.7",
            51514,
            "203.0.113.10",
            80,
            "10.0.0.11",
            8080,
            "ESTABLISHED",
            898,
        ),
        conn(
            "TCP",
            "198.51.100.0",
            0,
            "203.0.113.10",
            443,
            "10.0.0.11",
            443,
            "NONE",
            359,
        ),
        conn(
            "UDP",
            "198.51.100.9",
            40123,
            "203.0.113.53",
            53,
            "10.0.1.1",
            53,
            "UDP",
            297,
        ),
    ];
    assert_eq!(
        list_connections(&rows, false),
        "\
IPVS connection entries
pro expire state       source             virtual            destination
TCP 14:58  ESTABLISHED 198.51.100.7:51514 203.0.113.10:80    10.0.0.11:8080
TCP 05:59  NONE        198.51.100.0:0     203.0.113.10:443   10.0.0.11:443
UDP 04:57  UDP         198.51.100.9:40123 203.0.113.53:53    10.0.1.1:53
"
    );
    let mut pe = rows[1].clone();
    pe.pe = Some(("sip".into(), "call-1".into()));
    assert_eq!(
        list_connections(&[pe, rows[0].clone()], true),
        "\
IPVS connection entries
pro expire state       source             virtual            destination        pe name          pe_data
TCP 05:59  NONE        198.51.100.0:0     203.0.113.10:443   10.0.0.11:443    sip                call-1
TCP 14:58  ESTABLISHED 198.51.100.7:51514 203.0.113.10:80    10.0.0.11:8080
"
    );
    assert_eq!(expire_text(900), "15:00");
    assert_eq!(expire_text(8015), "133:35");
    assert_eq!(expire_text(5), "00:05");
    assert_eq!(
        list_timeout(&Timeouts::default()),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
}

#[test]
fn corpus_feiskyer_handbook() {
    let s = ListService::new(
        svc(Protocol::Tcp, "10.0.0.185", 80, SchedulerKind::Wlc),
        vec![
            dest("172.17.0.4", 80, Forward::Masq, 1, 0, 1),
            dest("172.17.0.3", 80, Forward::Masq, 1, 0, 1),
        ],
    );
    let out = list_all(&[s], &default_fmt());
    assert_eq!(strip_trailing(&out), corpus("feiskyer_handbook_ln_wlc.txt"));
}

#[test]
fn corpus_k8s_proxy_readme() {
    let mut api = svc(Protocol::Tcp, "10.0.0.1", 443, SchedulerKind::Rr);
    api.persistence = Some(10800);
    let services = vec![
        ListService::new(
            svc(Protocol::Udp, "10.0.0.10", 53, SchedulerKind::Rr),
            vec![dest("172.17.0.2", 53, Forward::Masq, 1, 0, 0)],
        ),
        ListService::new(
            svc(Protocol::Tcp, "10.0.0.10", 53, SchedulerKind::Rr),
            vec![dest("172.17.0.2", 53, Forward::Masq, 1, 0, 0)],
        ),
        ListService::new(api, vec![dest("192.168.0.1", 6443, Forward::Masq, 1, 1, 0)]),
    ];
    let out = list_all(&services, &default_fmt());
    assert_eq!(strip_trailing(&out), corpus("k8s_proxy_ipvs_readme_ln.txt"));
}

#[test]
fn corpus_lvscare_readme() {
    let s = ListService::new(
        svc(Protocol::Tcp, "169.254.0.1", 80, SchedulerKind::Rr),
        vec![
            dest("127.0.0.1", 8082, Forward::Masq, 1, 0, 2),
            dest("127.0.0.1", 8080, Forward::Masq, 1, 0, 2),
            dest("127.0.0.1", 8081, Forward::Masq, 1, 0, 2),
        ],
    );
    let out = list_all(&[s], &default_fmt());
    assert_eq!(strip_trailing(&out), corpus("lvscare_readme_ln.txt"));
}

#[test]
fn corpus_diamond_stats_exact_is_byte_exact() {
    let mut a = ListService::new(
        svc(Protocol::Tcp, "172.16.1.56", 443, SchedulerKind::Wlc),
        vec![dest("10.68.15.66", 443, Forward::Masq, 1, 0, 0)],
    );
    a.stats = c5([59, 469, 469, 57558, 216873]);
    a.dests[0].stats = a.stats;
    let mut b = ListService::new(
        svc(Protocol::Tcp, "172.16.1.56", 80, SchedulerKind::Wlc),
        vec![dest("10.68.15.66", 80, Forward::Masq, 1, 0, 0)],
    );
    b.stats = c5([116, 582893, 578642, 45293116, 826814146]);
    b.dests[0].stats = b.stats;
    let f = ListFormat {
        stats: true,
        exact: true,
        ..ListFormat::default()
    };
    assert_eq!(
        list_all(&[a, b], &f),
        corpus("diamond_ipvsadm_stats_exact.txt")
    );
}

/// Reads the rows of a `--stats` listing back into services.
fn rows_from_stats(body: &str) -> Vec<ListService> {
    let mut out: Vec<ListService> = Vec::new();
    for line in body.lines().skip(3) {
        let w: Vec<&str> = line.split_whitespace().collect();
        let nums: Vec<u64> = w[2..7].iter().map(|n| n.parse().unwrap()).collect();
        let counters = c5([nums[0], nums[1], nums[2], nums[3], nums[4]]);
        let (a, p) = w[1].rsplit_once(':').unwrap();
        if w[0] == "->" {
            let mut d = dest(a, p.parse().unwrap(), Forward::Masq, 1, 0, 0);
            d.stats = counters;
            out.last_mut().unwrap().dests.push(d);
        } else {
            let proto = if w[0] == "TCP" {
                Protocol::Tcp
            } else {
                Protocol::Udp
            };
            let mut s =
                ListService::new(svc(proto, a, p.parse().unwrap(), SchedulerKind::Rr), vec![]);
            s.stats = counters;
            out.push(s);
        }
    }
    out
}

#[test]
fn corpus_kube_router_stats() {
    let body = corpus("kube-router_pr160_ln_stats.txt");
    let mut services = rows_from_stats(&body);
    // Hand them over in another order: the listing sorts them back.
    services.reverse();
    for s in &mut services {
        s.dests.reverse();
    }
    let f = ListFormat {
        stats: true,
        ..ListFormat::default()
    };
    assert_eq!(strip_trailing(&list_all(&services, &f)), body);
}

#[test]
fn corpus_keepalived_connections() {
    let body = corpus("keepalived_issue1138_lcn.txt");
    let rows: Vec<ListConn> = body
        .lines()
        .skip(2)
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let (m, s) = w[1].split_once(':').unwrap();
            let ap = |x: &str| {
                let (a, p) = x.rsplit_once(':').unwrap();
                (ip(a), p.parse::<u16>().unwrap())
            };
            let (c, cp) = ap(w[3]);
            let (v, vp) = ap(w[4]);
            let (d, dp) = ap(w[5]);
            ListConn {
                proto_name: w[0].into(),
                caddr: c,
                cport: cp,
                vaddr: v,
                vport: vp,
                daddr: d,
                dport: dp,
                state: w[2].into(),
                expires_secs: m.parse::<u64>().unwrap() * 60 + s.parse::<u64>().unwrap(),
                pe: None,
            }
        })
        .collect();
    assert_eq!(rows.len(), 12);
    assert_eq!(list_connections(&rows, false), body);
}
