//! The HTTP server: one axum fallback handler that routes with
//! [`rvs_api::Route::parse`], so the route table lives in one place.

use std::future::Future;
use std::io;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rvs_api::{
    Batch, BatchOp, BatchResult, ConnList, ConnStatus, Control, ControlError, ErrorBody,
    HealthUpdate, Method, ProxyProtocol, Route, RouteError, ServerId, ServerSpec, ServiceId,
    ServiceList, ServiceSpec, ServiceStatus, SpecError, TimeoutsBody, ZeroRequest,
};
use rvs_core::model::{MAX_TIMEOUT, ServiceKey};
use rvs_ipvsadm::{Command, MethodChoice};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::UnixListener;

type Ctl = Arc<dyn Control>;

/// Serves the control API on `listener` until `shutdown` completes, then
/// stops accepting and returns once the requests in progress are answered.
pub async fn serve(
    listener: UnixListener,
    control: Arc<dyn Control>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let app = Router::new().fallback(handle).with_state(control);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// A successful answer: status and optional JSON body.
struct Reply(StatusCode, Option<serde_json::Value>);

fn json<T: Serialize>(status: StatusCode, v: &T) -> Reply {
    // Our own types always serialize.
    Reply(status, serde_json::to_value(v).ok())
}

fn err(status: u16, message: impl Into<String>) -> ControlError {
    ControlError {
        status,
        message: message.into(),
    }
}

fn error_response(e: &ControlError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(ErrorBody::new(e.message.clone()))).into_response()
}

async fn handle(
    State(ctl): State<Ctl>,
    method: axum::http::Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let result = match Method::parse(method.as_str()) {
        None => Err(err(405, format!("method {method} not allowed"))),
        Some(m) => match Route::parse(m, uri.path()) {
            Err(RouteError::NotFound(msg)) => Err(err(404, msg)),
            Err(RouteError::MethodNotAllowed) => Err(err(
                405,
                format!("method {method} not allowed on {}", uri.path()),
            )),
            Ok(route) => dispatch(&*ctl, route, &body),
        },
    };
    match result {
        Ok(Reply(status, Some(v))) => (status, axum::Json(v)).into_response(),
        Ok(Reply(status, None)) => status.into_response(),
        Err(e) => {
            tracing::debug!(%method, path = uri.path(), status = e.status, error = %e.message, "control request refused");
            let mut r = error_response(&e);
            if e.status == 405 {
                r.headers_mut().insert(
                    header::ALLOW,
                    header::HeaderValue::from_static("GET, POST, PUT, DELETE"),
                );
            }
            r
        }
    }
}

/// Parses a JSON body; malformed JSON and unknown keys are 400.
fn body<T: DeserializeOwned>(b: &[u8]) -> Result<T, ControlError> {
    serde_json::from_slice(b).map_err(|e| err(400, format!("invalid request body: {e}")))
}

/// Like [`body`], but an empty body means the type's default.
fn body_or_default<T: DeserializeOwned + Default>(b: &[u8]) -> Result<T, ControlError> {
    if b.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        body(b)
    }
}

fn spec_err(e: SpecError) -> ControlError {
    err(422, ErrorBody::from_spec(&e).error)
}

fn spec_err_under(prefix: &str) -> impl Fn(SpecError) -> ControlError + '_ {
    move |e| {
        let inner = ErrorBody::from_spec(&e).error;
        err(422, format!("{prefix}.{inner}"))
    }
}

fn check_timeouts(t: &TimeoutsBody) -> Result<(), ControlError> {
    for (name, v) in [("tcp", t.tcp), ("tcp_fin", t.tcp_fin), ("udp", t.udp)] {
        if v > MAX_TIMEOUT {
            return Err(err(
                422,
                format!("{name}: timeout {v} is above the maximum of {MAX_TIMEOUT} seconds"),
            ));
        }
    }
    Ok(())
}

fn status_of(ctl: &dyn Control, key: &ServiceKey) -> Result<ServiceStatus, ControlError> {
    ctl.services()
        .iter()
        .find(|s| s.config.key == *key)
        // The PROXY protocol setting is the data plane's, not the
        // director's; the Control trait does not report it.
        .map(|s| ServiceStatus::from_snapshot(s, ProxyProtocol::Off))
        .ok_or_else(|| err(404, "No such service"))
}

fn dispatch(ctl: &dyn Control, route: Route, raw: &[u8]) -> Result<Reply, ControlError> {
    Ok(match route {
        Route::ListServices => {
            let services = ctl
                .services()
                .iter()
                .map(|s| ServiceStatus::from_snapshot(s, ProxyProtocol::Off))
                .collect();
            json(StatusCode::OK, &ServiceList { services })
        }
        Route::GetService(id) => json(StatusCode::OK, &status_of(ctl, &id.0)?),
        Route::AddService => {
            let spec: ServiceSpec = body(raw)?;
            let key = spec.key().map_err(spec_err)?;
            let health = HealthUpdate::of_service(&spec).map_err(spec_err)?;
            let cmds = BatchOp::AddService { service: spec }
                .to_commands()
                .map_err(spec_err)?;
            ctl.apply_health(&cmds, &health)?;
            json(StatusCode::CREATED, &status_of(ctl, &key)?)
        }
        Route::EditService(id) => {
            let spec: ServiceSpec = body(raw)?;
            let cmds = edit_service_commands(ctl, id, &spec)?;
            let health = HealthUpdate::of_service(&spec).map_err(spec_err)?;
            ctl.apply_health(&cmds, &health)?;
            json(StatusCode::OK, &status_of(ctl, &id.0)?)
        }
        Route::DeleteService(id) => {
            ctl.apply(&[Command::DeleteService(id.0)])?;
            Reply(StatusCode::NO_CONTENT, None)
        }
        Route::AddServer(id) => {
            let server: ServerSpec = body(raw)?;
            let health: Vec<_> = HealthUpdate::of_server(id.0, &server)
                .map_err(spec_err)?
                .into_iter()
                .collect();
            let cmds = BatchOp::AddServer {
                service: id,
                server,
                default_method: false,
            }
            .to_commands()
            .map_err(spec_err)?;
            ctl.apply_health(&cmds, &health)?;
            json(StatusCode::CREATED, &status_of(ctl, &id.0)?)
        }
        Route::EditServer(id, sid) => {
            let server: ServerSpec = body(raw)?;
            let (addr, port) = server.addr_port(&id.0).map_err(spec_err)?;
            if (addr, port) != (sid.addr, sid.port) {
                return Err(err(
                    422,
                    format!(
                        "address: the body names server {} but the path names {sid}",
                        ServerId { addr, port }
                    ),
                ));
            }
            let health: Vec<_> = HealthUpdate::of_server(id.0, &server)
                .map_err(spec_err)?
                .into_iter()
                .collect();
            let cmds = BatchOp::EditServer {
                service: id,
                server,
                default_method: false,
            }
            .to_commands()
            .map_err(spec_err)?;
            ctl.apply_health(&cmds, &health)?;
            json(StatusCode::OK, &status_of(ctl, &id.0)?)
        }
        Route::DeleteServer(id, sid) => {
            ctl.apply(&[Command::DeleteDest {
                service: id.0,
                addr: sid.addr,
                port: sid.port,
            }])?;
            Reply(StatusCode::NO_CONTENT, None)
        }
        Route::Zero => {
            let z: ZeroRequest = body_or_default(raw)?;
            ctl.apply(&[Command::Zero(z.service.map(|s| s.0))])?;
            Reply(StatusCode::NO_CONTENT, None)
        }
        Route::GetTimeouts => json(StatusCode::OK, &TimeoutsBody::from(ctl.timeouts())),
        Route::SetTimeouts => {
            let t: TimeoutsBody = body(raw)?;
            check_timeouts(&t)?;
            ctl.apply(&[Command::SetTimeouts(t.into())])?;
            json(StatusCode::OK, &TimeoutsBody::from(ctl.timeouts()))
        }
        Route::ListDaemons => json(
            StatusCode::OK,
            &rvs_api::DaemonList {
                daemons: ctl.daemons(),
            },
        ),
        Route::StartDaemon => {
            let spec: rvs_api::DaemonSpec = body(raw)?;
            ctl.start_daemon(&spec)?;
            json(
                StatusCode::CREATED,
                &rvs_api::DaemonList {
                    daemons: ctl.daemons(),
                },
            )
        }
        Route::StopDaemon(role) => {
            if !ctl.stop_daemon(role)? {
                // ipvsadm's words for the kernel's ESRCH.
                return Err(err(404, "No daemon is running"));
            }
            Reply(StatusCode::NO_CONTENT, None)
        }
        Route::ListConnections => {
            let connections = ctl.connections().iter().map(ConnStatus::from).collect();
            json(StatusCode::OK, &ConnList { connections })
        }
        Route::Health => match ctl.health() {
            Some(h) => json(StatusCode::OK, &h),
            None => return Err(err(404, "this data plane runs no health checks")),
        },
        Route::Batch => {
            let batch: Batch = body(raw)?;
            let mut cmds = Vec::new();
            let mut health = Vec::new();
            for (i, op) in batch.ops.iter().enumerate() {
                if let BatchOp::SetTimeouts { timeouts } = op {
                    check_timeouts(timeouts)
                        .map_err(|e| err(e.status, format!("ops[{i}].timeouts.{}", e.message)))?;
                }
                let prefix = format!("ops[{i}]");
                cmds.extend(op.to_commands().map_err(spec_err_under(&prefix))?);
                health.extend(op.health_updates().map_err(spec_err_under(&prefix))?);
            }
            ctl.apply_health(&cmds, &health)?;
            json(
                StatusCode::OK,
                &BatchResult {
                    applied: batch.ops.len(),
                },
            )
        }
    })
}

/// The commands of `PUT /v1/services/{id}`: the service's attributes, and
/// when the body has a server list, the edits that make the servers that
/// list (removed ones deleted, kept ones edited in place, new ones added).
fn edit_service_commands(
    ctl: &dyn Control,
    id: ServiceId,
    spec: &ServiceSpec,
) -> Result<Vec<Command>, ControlError> {
    let key = spec.key().map_err(spec_err)?;
    if key != id.0 {
        return Err(err(
            422,
            format!(
                "the body names service {} but the path names {id}",
                ServiceId(key)
            ),
        ));
    }
    let mut cmds = vec![Command::EditService(
        spec.to_service_config().map_err(spec_err)?,
    )];
    let Some(servers) = &spec.servers else {
        return Ok(cmds);
    };
    // The current servers are read here and the edits applied in a
    // separate call; a change made by another client in between is
    // caught by the all-or-nothing apply only when it makes a command
    // fail (a server added meanwhile is kept).
    let current = ctl
        .services()
        .into_iter()
        .find(|s| s.config.key == key)
        .ok_or_else(|| err(404, "No such service"))?;
    let mut wanted = Vec::with_capacity(servers.len());
    for (i, s) in servers.iter().enumerate() {
        let prefix = format!("server[{i}]");
        wanted.push(s.to_core(&key).map_err(spec_err_under(&prefix))?);
    }
    for d in &current.dests {
        if !wanted
            .iter()
            .any(|w| (w.addr, w.port) == (d.config.addr, d.config.port))
        {
            cmds.push(Command::DeleteDest {
                service: key,
                addr: d.config.addr,
                port: d.config.port,
            });
        }
    }
    for w in wanted {
        let exists = current
            .dests
            .iter()
            .any(|d| (d.config.addr, d.config.port) == (w.addr, w.port));
        cmds.push(if exists {
            Command::EditDest {
                service: key,
                dest: w,
                method: MethodChoice::Named,
            }
        } else {
            Command::AddDest {
                service: key,
                dest: w,
                method: MethodChoice::Named,
            }
        });
    }
    Ok(cmds)
}
