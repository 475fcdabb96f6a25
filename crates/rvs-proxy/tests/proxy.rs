//! End-to-end tests of the proxy engine on 127.0.0.1 with real sockets:
//! backend tasks that greet with their name and then echo.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use rvs_api::Control;
use rvs_config::ProxyProtocol;
use rvs_core::director::DirectorConfig;
use rvs_core::model::{Protocol, ServiceKey};
use rvs_ipvsadm::{Command, parse_args};
use rvs_proxy::{Engine, EngineConfig, RelayMode};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(10);

fn cmd(line: &str) -> Command {
    parse_args(&line.split_whitespace().collect::<Vec<_>>()).unwrap()
}

fn engine(nodest: bool) -> Engine {
    let mut director = DirectorConfig::default();
    director.sysctls.expire_nodest_conn = nodest;
    let mut cfg = EngineConfig {
        director,
        tick: Duration::from_millis(100),
        ..Default::default()
    };
    cfg.proxy.threads = 2;
    cfg.proxy.connect_timeout_ms = 2000;
    Engine::new(cfg)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A backend that writes its name and a newline, then echoes until EOF.
async fn backend(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                s.write_all(format!("{name}\n").as_bytes()).await?;
                let (mut r, mut w) = s.split();
                tokio::io::copy(&mut r, &mut w).await?;
                w.shutdown().await
            });
        }
    });
    a
}

/// Connects through the VIP and reads the backend's name; the stream
/// stays open for the caller.
async fn open(vip: SocketAddr) -> (String, BufReader<TcpStream>) {
    let s = timeout(T, TcpStream::connect(vip)).await.unwrap().unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    timeout(T, r.read_line(&mut line)).await.unwrap().unwrap();
    (line.trim().to_string(), r)
}

async fn ask(vip: SocketAddr) -> String {
    open(vip).await.0
}

async fn echo(r: &mut BufReader<TcpStream>, msg: &str) -> std::io::Result<String> {
    r.get_mut().write_all(format!("{msg}\n").as_bytes()).await?;
    let mut line = String::new();
    let n = timeout(T, r.read_line(&mut line)).await??;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line.trim().to_string())
}

fn service(e: &Engine, sched: &str, servers: &[(SocketAddr, u32)]) -> SocketAddr {
    let vip = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let mut cmds = vec![cmd(&format!("-A -t {vip} -s {sched}"))];
    for (a, w) in servers {
        cmds.push(cmd(&format!("-a -t {vip} -r {a} -m -w {w}")));
    }
    e.apply(&cmds).unwrap();
    vip
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rr_cycle_is_exact() {
    let e = engine(false);
    let b = [
        backend("b1").await,
        backend("b2").await,
        backend("b3").await,
    ];
    let vip = service(&e, "rr", &[(b[0], 1), (b[1], 1), (b[2], 1)]);
    let mut got = Vec::new();
    for _ in 0..9 {
        got.push(ask(vip).await);
    }
    let mut first: Vec<_> = got[..3].to_vec();
    first.sort();
    assert_eq!(first, ["b1", "b2", "b3"], "{got:?}");
    assert_eq!(got[..3], got[3..6], "{got:?}");
    assert_eq!(got[..3], got[6..9], "{got:?}");
    let s = e.services();
    assert_eq!(s[0].stats.conns, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrr_cycle_is_exact() {
    let e = engine(false);
    let b = [
        backend("w3").await,
        backend("w2").await,
        backend("w1").await,
    ];
    let vip = service(&e, "wrr", &[(b[0], 3), (b[1], 2), (b[2], 1)]);
    let mut got = Vec::new();
    for _ in 0..12 {
        got.push(ask(vip).await);
    }
    assert_eq!(got[..6], got[6..], "{got:?}");
    for (name, n) in [("w3", 3), ("w2", 2), ("w1", 1)] {
        assert_eq!(got[..6].iter().filter(|g| *g == name).count(), n, "{got:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wlc_prefers_the_less_loaded_server() {
    let e = engine(false);
    let a = backend("busy").await;
    let b = backend("idle").await;
    let vip = service(&e, "wlc", &[(a, 1)]);
    let mut held = Vec::new();
    for _ in 0..3 {
        let (n, s) = open(vip).await;
        assert_eq!(n, "busy");
        held.push(s);
    }
    e.apply(&[cmd(&format!("-a -t {vip} -r {b} -m -w 1"))])
        .unwrap();
    for _ in 0..3 {
        let (n, s) = open(vip).await;
        assert_eq!(n, "idle");
        held.push(s);
    }
    let s = e.services();
    assert!(s[0].dests.iter().all(|d| d.active == 3), "{:?}", s[0].dests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistence_by_client_netmask() {
    let e = engine(false);
    let b = [backend("p1").await, backend("p2").await];
    let vip = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    e.apply(&[
        cmd(&format!("-A -t {vip} -s rr -p 60 -M 255.255.255.0")),
        cmd(&format!("-a -t {vip} -r {} -m", b[0])),
        cmd(&format!("-a -t {vip} -r {} -m", b[1])),
    ])
    .unwrap();
    let first = ask(vip).await;
    for _ in 0..5 {
        assert_eq!(ask(vip).await, first);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_zero_drains_while_a_transfer_goes_on() {
    let e = engine(false);
    let b = [backend("d1").await, backend("d2").await];
    let vip = service(&e, "rr", &[(b[0], 1), (b[1], 1)]);
    let (name, mut long) = open(vip).await;
    let (addr, other) = if name == "d1" {
        (b[0], "d2")
    } else {
        (b[1], "d1")
    };
    e.apply(&[cmd(&format!("-e -t {vip} -r {addr} -m -w 0"))])
        .unwrap();
    for i in 0..4 {
        assert_eq!(ask(vip).await, other);
        let big = "x".repeat(100_000);
        assert_eq!(
            echo(&mut long, &big).await.unwrap().len(),
            big.len(),
            "round {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_server_keeps_relays_without_expire_nodest_conn() {
    let e = engine(false);
    let b = backend("k1").await;
    let vip = service(&e, "rr", &[(b, 1)]);
    let (_, mut s) = open(vip).await;
    e.apply(&[cmd(&format!("-d -t {vip} -r {b}"))]).unwrap();
    e.sweep();
    for _ in 0..3 {
        assert_eq!(echo(&mut s, "still here").await.unwrap(), "still here");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_server_closes_relays_with_expire_nodest_conn() {
    let e = engine(true);
    let b = backend("n1").await;
    let vip = service(&e, "rr", &[(b, 1)]);
    let (_, mut s) = open(vip).await;
    assert_eq!(echo(&mut s, "before").await.unwrap(), "before");
    e.apply(&[cmd(&format!("-d -t {vip} -r {b}"))]).unwrap();
    let mut buf = [0u8; 64];
    let r = timeout(T, s.read(&mut buf)).await.expect("closed in time");
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failure_is_retried_on_another_server() {
    let e = engine(false);
    let dead = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let live = backend("alive").await;
    let vip = service(&e, "rr", &[(dead, 1), (live, 1)]);
    for _ in 0..4 {
        assert_eq!(ask(vip).await, "alive");
    }
    let f = e.connect_failures();
    let n: u64 = f
        .iter()
        .filter(|x| (x.1, x.2) == (dead.ip(), dead.port()))
        .map(|x| x.3)
        .sum();
    assert!(n >= 2, "{f:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_servers_are_refused() {
    let e = engine(false);
    let vip = service(&e, "rr", &[]);
    let err = e
        .apply(&[cmd(&format!("-a -t {vip} -r 127.0.0.1:9 -g"))])
        .unwrap_err();
    assert!(err.message.contains("packet data plane"), "{err}");
    assert!(e.services()[0].dests.is_empty());
}

async fn udp_backend(name: &'static str) -> SocketAddr {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let a = s.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((_, from)) = s.recv_from(&mut buf).await {
            let _ = s.send_to(name.as_bytes(), from).await;
        }
    });
    a
}

async fn udp_ask(c: &UdpSocket, vip: SocketAddr) -> String {
    c.send_to(b"hi", vip).await.unwrap();
    let mut buf = [0u8; 1500];
    let (n, from) = timeout(T, c.recv_from(&mut buf)).await.unwrap().unwrap();
    assert_eq!(from, vip, "replies come from the VIP");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

async fn udp_service(e: &Engine, opts: &str) -> SocketAddr {
    let b = [udp_backend("u1").await, udp_backend("u2").await];
    let vip = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
    e.apply(&[
        cmd(&format!("-A -u {vip} -s rr {opts}")),
        cmd(&format!("-a -u {vip} -r {} -m", b[0])),
        cmd(&format!("-a -u {vip} -r {} -m", b[1])),
    ])
    .unwrap();
    vip
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_sessions_stick_per_client() {
    let e = engine(false);
    let vip = udp_service(&e, "").await;
    let a = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let b = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let first_a = udp_ask(&a, vip).await;
    let first_b = udp_ask(&b, vip).await;
    assert_ne!(first_a, first_b);
    for _ in 0..3 {
        assert_eq!(udp_ask(&a, vip).await, first_a);
        assert_eq!(udp_ask(&b, vip).await, first_b);
    }
    assert_eq!(e.services()[0].stats.conns, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_one_packet_scheduling() {
    let e = engine(false);
    let vip = udp_service(&e, "-o").await;
    let a = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(udp_ask(&a, vip).await);
    }
    assert_ne!(got[0], got[1], "{got:?}");
    assert_eq!(got[0], got[2], "{got:?}");
    assert_eq!(got[1], got[3], "{got:?}");
}

/// A backend that reads everything to end of file, answers with a digest
/// of it (length and byte sum), then half-closes: a relay that loses,
/// reorders or truncates bytes, or never passes the client's half-close
/// on, fails it.
async fn sink() -> SocketAddr {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut all = Vec::new();
                s.read_to_end(&mut all).await?;
                s.write_all(digest(&all).as_bytes()).await?;
                s.shutdown().await
            });
        }
    });
    a
}

fn digest(b: &[u8]) -> String {
    let sum = b.iter().enumerate().fold(0u64, |h, (i, &x)| {
        h.wrapping_mul(31).wrapping_add(x as u64 ^ i as u64)
    });
    format!("{} {sum:x}", b.len())
}

async fn bulk_and_half_close(mode: RelayMode) {
    let e = engine(false);
    e.set_relay_mode(mode);
    assert_eq!(e.relay_mode(), mode);
    let vip = service(&e, "rr", &[(sink().await, 1)]);
    // 8 MiB in uneven writes: many reads, pipe refills and partial writes.
    let data: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut s = timeout(T, TcpStream::connect(vip)).await.unwrap().unwrap();
    let (mut r, mut w) = s.split();
    let send = async {
        for c in data.chunks(70_001) {
            w.write_all(c).await?;
        }
        // The client's FIN must reach the backend while the answer has
        // yet to come back the other way.
        w.shutdown().await
    };
    let mut answer = String::new();
    let (a, b) = tokio::join!(timeout(T, send), timeout(T, r.read_to_string(&mut answer)));
    a.unwrap().unwrap();
    b.unwrap().unwrap();
    assert_eq!(answer, digest(&data), "{mode:?}");
    // Bytes are counted as the relay moved them, both ways.
    let st = e.services()[0].stats;
    assert_eq!(st.inbytes, data.len() as u64, "{mode:?} {st:?}");
    assert_eq!(st.outbytes, answer.len() as u64, "{mode:?} {st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_relay_moves_bulk_and_half_closes() {
    bulk_and_half_close(RelayMode::Buffered).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splice_relay_moves_bulk_and_half_closes() {
    bulk_and_half_close(RelayMode::Splice).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_relay_moves_bulk_and_half_closes() {
    bulk_and_half_close(RelayMode::Auto).await;
}

/// A backend that reads one PROXY header (v1 line or v2 block), sends
/// back its raw bytes, then echoes until end of file.
async fn pp_backend() -> SocketAddr {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut s = BufReader::new(s);
                let mut h = Vec::new();
                if s.fill_buf().await?.starts_with(b"PROXY ") {
                    s.read_until(b'\n', &mut h).await?;
                } else {
                    h.resize(16, 0);
                    s.read_exact(&mut h).await?;
                    let len = u16::from_be_bytes([h[14], h[15]]) as usize;
                    h.resize(16 + len, 0);
                    s.read_exact(&mut h[16..]).await?;
                }
                s.get_mut().write_all(&h).await?;
                let (mut r, mut w) = tokio::io::split(s);
                tokio::io::copy(&mut r, &mut w).await?;
                w.shutdown().await
            });
        }
    });
    a
}

/// Opens a connection through a PROXY-protocol service and returns the
/// header the backend saw (`len` bytes), the client's own address and
/// the stream.
async fn pp_open(vip: SocketAddr, len: usize) -> (Vec<u8>, SocketAddr, TcpStream) {
    let mut s = timeout(T, TcpStream::connect(vip)).await.unwrap().unwrap();
    let me = s.local_addr().unwrap();
    let mut h = vec![0u8; len];
    timeout(T, s.read_exact(&mut h)).await.unwrap().unwrap();
    (h, me, s)
}

async fn pp_open_line(vip: SocketAddr) -> (Vec<u8>, SocketAddr, TcpStream) {
    let s = timeout(T, TcpStream::connect(vip)).await.unwrap().unwrap();
    let me = s.local_addr().unwrap();
    let mut r = BufReader::new(s);
    let mut h = Vec::new();
    timeout(T, r.read_until(b'\n', &mut h))
        .await
        .unwrap()
        .unwrap();
    assert!(r.buffer().is_empty(), "nothing after the header yet");
    (h, me, r.into_inner())
}

async fn payload_still_relays(s: &mut TcpStream) {
    s.write_all(b"after the header\n").await.unwrap();
    let mut back = [0u8; 17];
    timeout(T, s.read_exact(&mut back)).await.unwrap().unwrap();
    assert_eq!(&back, b"after the header\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_v1_carries_client_and_vip() {
    for mode in [RelayMode::Buffered, RelayMode::Splice, RelayMode::Auto] {
        let e = engine(false);
        e.set_relay_mode(mode);
        let vip = service(&e, "rr", &[(pp_backend().await, 1)]);
        e.set_proxy_protocol(key(vip), ProxyProtocol::V1);
        // The length of the line depends on the client's port, known only
        // once connected: read up to the line's end.
        let (h, me, mut s) = pp_open_line(vip).await;
        let want = format!(
            "PROXY TCP4 {} {} {} {}\r\n",
            me.ip(),
            vip.ip(),
            me.port(),
            vip.port()
        );
        assert_eq!(String::from_utf8(h).unwrap(), want, "{mode:?}");
        payload_still_relays(&mut s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_v2_binary_layout() {
    for mode in [RelayMode::Buffered, RelayMode::Splice, RelayMode::Auto] {
        let e = engine(false);
        e.set_relay_mode(mode);
        let vip = service(&e, "rr", &[(pp_backend().await, 1)]);
        // Set after the service started: applies to its next connections.
        e.set_proxy_protocol(key(vip), ProxyProtocol::V2);
        let (h, me, mut s) = pp_open(vip, 28).await;
        // The 12-byte signature, then version 2 / PROXY command, then
        // AF_INET / STREAM, then the 12-byte address block.
        assert_eq!(&h[..12], b"\r\n\r\n\0\r\nQUIT\n", "{mode:?}");
        assert_eq!(h[12], 0x21, "version 2, PROXY");
        assert_eq!(h[13], 0x11, "TCP over IPv4");
        assert_eq!(u16::from_be_bytes([h[14], h[15]]), 12);
        let ip = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
        let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
        assert_eq!(SocketAddr::from((ip(&h[16..20]), port(&h[24..26]))), me);
        assert_eq!(SocketAddr::from((ip(&h[20..24]), port(&h[26..28]))), vip);
        payload_still_relays(&mut s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_is_off_by_default() {
    let e = engine(false);
    let vip = service(&e, "rr", &[(backend("plain").await, 1)]);
    assert_eq!(ask(vip).await, "plain");
}

fn key(vip: SocketAddr) -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: vip.ip(),
        port: vip.port(),
    }
}
