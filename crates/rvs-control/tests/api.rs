//! The control API end to end: `serve` on a socket in a temporary
//! directory over a `DirectorControl`, driven through `Client`.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use rvs_api::{DirectorControl, Method};
use rvs_control::{Client, ClientError};
use rvs_core::director::{Director, DirectorConfig};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct Daemon {
    dir: PathBuf,
    client: Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Daemon {
    fn start(test: &str) -> Daemon {
        let dir = std::env::temp_dir().join(format!("rvs-control-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let sock = dir.join("run").join("rvsd.sock");
        let listener = rvs_control::bind(&sock).expect("bind");
        let ctl = Arc::new(DirectorControl::new(
            Director::new(DirectorConfig::default()),
            || 0,
        ));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(rvs_control::serve(listener, ctl, async {
            let _ = stopped.await;
        }));
        Daemon {
            dir,
            client: Client::new(sock),
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn req(&self, method: Method, path: &str, body: Option<&str>) -> (u16, Value) {
        let (status, bytes) = self
            .client
            .request(method, path, body.map(|b| b.as_bytes().to_vec()))
            .await
            .expect("exchange");
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON answer")
        };
        (status, v)
    }

    async fn save(&self) -> String {
        let list = self.client.services().await.unwrap();
        let services: Vec<_> = list
            .services
            .iter()
            .map(|s| {
                let r = rvs_control::list_service(s).unwrap();
                (r.config, r.dests.into_iter().map(|d| d.config).collect())
            })
            .collect();
        rvs_ipvsadm::save(&services)
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), task)
            .await
            .expect("server stops in time")
            .unwrap()
            .unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn error_of(v: &Value) -> &str {
    v["error"].as_str().expect("an ErrorBody")
}

const WEB: &str = r#"{"address": "203.0.113.1:80", "scheduler": "rr",
    "server": [{"address": "192.0.2.1:8080", "weight": 2}]}"#;

#[tokio::test]
async fn socket_is_owner_only() {
    let d = Daemon::start("perms");
    let sock = d.client.path().to_path_buf();
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(sock.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    // A live socket is not taken over.
    let err = rvs_control::bind(&sock).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    d.stop().await;
    // A stale one is replaced.
    let l = rvs_control::bind(&sock).expect("stale socket replaced");
    drop(l);
}

#[tokio::test]
async fn services_and_servers() {
    let d = Daemon::start("services");
    let (s, v) = d.req(Method::Post, "/v1/services", Some(WEB)).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["id"], "tcp-203.0.113.1-80");
    assert_eq!(v["servers"][0]["id"], "192.0.2.1-8080");
    assert_eq!(v["servers"][0]["server"]["weight"], 2);

    let (s, v) = d.req(Method::Post, "/v1/services", Some(WEB)).await;
    assert_eq!((s, error_of(&v)), (409, "Service already exists"));

    let (s, v) = d.req(Method::Get, "/v1/services", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["services"].as_array().unwrap().len(), 1);
    let (s, v) = d
        .req(Method::Get, "/v1/services/tcp-203.0.113.1-80", None)
        .await;
    assert_eq!((s, &v["id"]), (200, &json!("tcp-203.0.113.1-80")));
    let (s, v) = d
        .req(Method::Get, "/v1/services/tcp-203.0.113.9-80", None)
        .await;
    assert_eq!((s, error_of(&v)), (404, "No such service"));

    // Servers.
    let (s, v) = d
        .req(
            Method::Post,
            "/v1/services/tcp-203.0.113.1-80/servers",
            Some(r#"{"address": "192.0.2.2:8080"}"#),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["servers"].as_array().unwrap().len(), 2);
    let (s, v) = d
        .req(
            Method::Put,
            "/v1/services/tcp-203.0.113.1-80/servers/192.0.2.2-8080",
            Some(r#"{"address": "192.0.2.2:8080", "weight": 5}"#),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    // Path and body must name the same server.
    let (s, v) = d
        .req(
            Method::Put,
            "/v1/services/tcp-203.0.113.1-80/servers/192.0.2.2-8080",
            Some(r#"{"address": "192.0.2.3:8080"}"#),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(
        d.save().await,
        "-A -t 203.0.113.1:80 -s rr\n-a -t 203.0.113.1:80 -r 192.0.2.1:8080 -m -w 2\n-a -t 203.0.113.1:80 -r 192.0.2.2:8080 -m -w 5\n"
    );
    let (s, _) = d
        .req(
            Method::Delete,
            "/v1/services/tcp-203.0.113.1-80/servers/192.0.2.2-8080",
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, v) = d
        .req(
            Method::Delete,
            "/v1/services/tcp-203.0.113.1-80/servers/192.0.2.2-8080",
            None,
        )
        .await;
    assert_eq!((s, error_of(&v)), (404, "No such destination"));

    // PUT with a server list makes the servers that list.
    let (s, v) = d
        .req(
            Method::Put,
            "/v1/services/tcp-203.0.113.1-80",
            Some(
                r#"{"address": "203.0.113.1:80", "scheduler": "wrr",
                   "server": [{"address": "192.0.2.1:8080", "weight": 3},
                              {"address": "192.0.2.4:8080"}]}"#,
            ),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        d.save().await,
        "-A -t 203.0.113.1:80 -s wrr\n-a -t 203.0.113.1:80 -r 192.0.2.1:8080 -m -w 3\n-a -t 203.0.113.1:80 -r 192.0.2.4:8080 -m -w 1\n"
    );
    // PUT without a list leaves the servers.
    let (s, _) = d
        .req(
            Method::Put,
            "/v1/services/tcp-203.0.113.1-80",
            Some(r#"{"address": "203.0.113.1:80", "scheduler": "rr"}"#),
        )
        .await;
    assert_eq!(s, 200);
    assert!(d.save().await.starts_with("-A -t 203.0.113.1:80 -s rr\n-a"));
    // A body naming another service is refused.
    let (s, _) = d
        .req(
            Method::Put,
            "/v1/services/tcp-203.0.113.1-80",
            Some(r#"{"address": "203.0.113.2:80"}"#),
        )
        .await;
    assert_eq!(s, 422);

    let (s, _) = d
        .req(Method::Delete, "/v1/services/tcp-203.0.113.1-80", None)
        .await;
    assert_eq!(s, 204);
    assert_eq!(d.save().await, "");
    d.stop().await;
}

#[tokio::test]
async fn bad_requests_change_nothing() {
    let d = Daemon::start("bad");
    let (s, _) = d.req(Method::Post, "/v1/services", Some(WEB)).await;
    assert_eq!(s, 201);
    let before = d.save().await;
    for (method, path, body, status) in [
        (Method::Post, "/v1/services", "{", 400),
        (
            Method::Post,
            "/v1/services",
            r#"{"address": "203.0.113.2:80", "colour": 1}"#,
            400,
        ),
        (
            Method::Post,
            "/v1/services",
            r#"{"address": "203.0.113.2:80", "scheduler": "nope"}"#,
            422,
        ),
        (
            Method::Post,
            "/v1/services",
            r#"{"address": "203.0.113.2:80", "server": [{"address": "192.0.2.1", "weight": 70000}]}"#,
            422,
        ),
        (
            Method::Post,
            "/v1/services/tcp-203.0.113.9-80/servers",
            r#"{"address": "192.0.2.9:80"}"#,
            404,
        ),
        (
            Method::Post,
            "/v1/services/tcp-203.0.113.1-80/servers",
            r#"{"address": "192.0.2.1:8080"}"#,
            409,
        ),
        (Method::Put, "/v1/timeouts", r#"{"tcp": 99999999}"#, 422),
        (Method::Put, "/v1/timeouts", r#"{"tcp": "x"}"#, 400),
        (
            Method::Post,
            "/v1/zero",
            r#"{"service": "tcp-203.0.113.9-80"}"#,
            404,
        ),
        (Method::Get, "/v1/services/nonsense", "", 404),
        (Method::Get, "/v1/nothing", "", 404),
        (Method::Get, "/", "", 404),
        (Method::Delete, "/v1/timeouts", "", 405),
        (Method::Post, "/v1/connections", "", 405),
        // Second op refused: the first one is not applied either.
        (
            Method::Post,
            "/v1/batch",
            r#"{"ops": [
            {"op": "add_service", "service": {"address": "203.0.113.5:80"}},
            {"op": "add_server", "service": "tcp-203.0.113.9-80", "server": {"address": "192.0.2.1:80"}}]}"#,
            404,
        ),
        (
            Method::Post,
            "/v1/batch",
            r#"{"ops": [
            {"op": "add_service", "service": {"address": "203.0.113.5:80"}},
            {"op": "add_server", "service": "tcp-203.0.113.5-80", "server": {"address": "192.0.2.1:80", "weight": -1}}]}"#,
            400,
        ),
        (
            Method::Post,
            "/v1/batch",
            r#"{"ops": [
            {"op": "add_service", "service": {"address": "203.0.113.5:80"}},
            {"op": "add_server", "service": "tcp-203.0.113.5-80", "server": {"address": "192.0.2.1:80", "tun_type": "gue"}}]}"#,
            422,
        ),
        (
            Method::Post,
            "/v1/batch",
            r#"{"ops": [{"op": "frob"}]}"#,
            400,
        ),
    ] {
        let (s, v) = d
            .req(method, path, (!body.is_empty()).then_some(body))
            .await;
        assert_eq!(s, status, "{method} {path} {body}: {v}");
        assert!(!error_of(&v).is_empty());
        assert_eq!(
            d.save().await,
            before,
            "{method} {path} {body} changed the rules"
        );
    }
    // Still answering after the refusals.
    let (s, _) = d.req(Method::Get, "/v1/timeouts", None).await;
    assert_eq!(s, 200);
    d.stop().await;
}

#[tokio::test]
async fn timeouts_zero_connections_batch() {
    let d = Daemon::start("misc");
    let (s, v) = d.req(Method::Get, "/v1/timeouts", None).await;
    assert_eq!(
        (s, v),
        (200, json!({"tcp": 900, "tcp_fin": 120, "udp": 300}))
    );
    let (s, v) = d
        .req(
            Method::Put,
            "/v1/timeouts",
            Some(r#"{"tcp": 600, "udp": 0}"#),
        )
        .await;
    assert_eq!(
        (s, v),
        (200, json!({"tcp": 600, "tcp_fin": 120, "udp": 300}))
    );

    let (s, v) = d
        .req(
            Method::Post,
            "/v1/batch",
            Some(
                r#"{"ops": [
                {"op": "add_service", "service": {"protocol": "udp", "address": "203.0.113.53:53", "scheduler": "rr"}},
                {"op": "add_server", "service": "udp-203.0.113.53-53", "server": {"address": "192.0.2.53:53"}},
                {"op": "zero"},
                {"op": "set_timeouts", "timeouts": {"udp": 30}}]}"#,
            ),
        )
        .await;
    assert_eq!((s, v), (200, json!({"applied": 4})));
    assert_eq!(d.client.timeouts().await.unwrap().udp, 30);

    let (s, v) = d.req(Method::Post, "/v1/zero", None).await;
    assert_eq!((s, v), (204, Value::Null));
    let (s, _) = d
        .req(
            Method::Post,
            "/v1/zero",
            Some(r#"{"service": "udp-203.0.113.53-53"}"#),
        )
        .await;
    assert_eq!(s, 204);

    let (s, v) = d.req(Method::Get, "/v1/connections", None).await;
    assert_eq!((s, v), (200, json!({"connections": []})));

    // The client's ipvsadm path.
    let cmd = |l: &str| rvs_ipvsadm::parse_args(&l.split_whitespace().collect::<Vec<_>>()).unwrap();
    d.client
        .apply(&[
            cmd("-A -t 203.0.113.1:80 -s rr"),
            cmd("-a -t 203.0.113.1:80 -r 192.0.2.1:80 -m"),
        ])
        .await
        .unwrap();
    match d
        .client
        .apply(&[cmd("-D -t 203.0.113.1:80"), cmd("-D -t 203.0.113.1:80")])
        .await
    {
        Err(ClientError::Refused {
            status: 404,
            message,
        }) => assert_eq!(message, "No such service"),
        other => panic!("{other:?}"),
    }
    assert_eq!(d.client.services().await.unwrap().services.len(), 2);
    assert!(matches!(
        d.client.apply(&[cmd("-Ln")]).await,
        Err(ClientError::NotARule(_))
    ));
    d.stop().await;
}

#[tokio::test]
async fn unreachable_daemon_names_the_socket() {
    let path = std::env::temp_dir().join(format!("rvs-control-{}-absent.sock", std::process::id()));
    let err = Client::new(&path).timeouts().await.unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }));
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn default_path_is_per_user() {
    let p = rvs_control::default_socket_path();
    assert!(p.ends_with("rvsd.sock"), "{}", p.display());
    if rustix_is_root() {
        assert_eq!(p, PathBuf::from("/run/rvs/rvsd.sock"));
    }
}

fn rustix_is_root() -> bool {
    // The owner of /proc/self is the process's effective user.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

#[tokio::test]
async fn health_keys_against_a_plane_without_checks() {
    let d = Daemon::start("health");
    let (s, v) = d.req(Method::Get, "/v1/health", None).await;
    assert_eq!(s, 404, "{v}");
    assert!(v["error"].as_str().unwrap().contains("no health checks"));
    // A bad check is named by its path, before anything else.
    let bad = r#"{"address":"203.0.113.1:80","server":[{"address":"192.0.2.1:80","check":[{"type":"http","digest":"xyz"}]}]}"#;
    let (s, v) = d.req(Method::Post, "/v1/services", Some(bad)).await;
    assert_eq!(s, 422, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("server[0].check[0].digest: "),
        "{v}"
    );
    // A good one is refused by this data plane, and nothing changes.
    let good = r#"{"address":"203.0.113.1:80","server":[{"address":"192.0.2.1:80","check":[{"type":"tcp"}]}]}"#;
    let (s, v) = d.req(Method::Post, "/v1/services", Some(good)).await;
    assert_eq!(s, 422, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("no health checks"),
        "{v}"
    );
    assert_eq!(d.save().await, "");
    // Unknown keys in a check are refused as anywhere else.
    let unknown = r#"{"address":"203.0.113.1:80","server":[{"address":"192.0.2.1:80","check":[{"type":"tcp","bogus":1}]}]}"#;
    let (s, _) = d.req(Method::Post, "/v1/services", Some(unknown)).await;
    assert_eq!(s, 400);
}
