//! The routes of the API: parsed from a request line by the daemon, built
//! into one by the client, and listed in [`ENDPOINTS`].

use std::fmt;

use crate::ids::{ServerId, ServiceId};

/// An HTTP method the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`: read.
    Get,
    /// `POST`: create or act.
    Post,
    /// `PUT`: replace.
    Put,
    /// `DELETE`: remove.
    Delete,
}

impl Method {
    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }

    /// The method of a name on the wire (case-sensitive, as HTTP is).
    pub fn parse(name: &str) -> Option<Method> {
        Some(match name {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            _ => return None,
        })
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request of the API: method, path and the identities in the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /v1/services`.
    ListServices,
    /// `POST /v1/services`.
    AddService,
    /// `GET /v1/services/{id}`.
    GetService(ServiceId),
    /// `PUT /v1/services/{id}`.
    EditService(ServiceId),
    /// `DELETE /v1/services/{id}`.
    DeleteService(ServiceId),
    /// `POST /v1/services/{id}/servers`.
    AddServer(ServiceId),
    /// `PUT /v1/services/{id}/servers/{server}`.
    EditServer(ServiceId, ServerId),
    /// `DELETE /v1/services/{id}/servers/{server}`.
    DeleteServer(ServiceId, ServerId),
    /// `POST /v1/zero`.
    Zero,
    /// `GET /v1/timeouts`.
    GetTimeouts,
    /// `PUT /v1/timeouts`.
    SetTimeouts,
    /// `GET /v1/connections`.
    ListConnections,
    /// `POST /v1/batch`.
    Batch,
    /// `GET /v1/health` (also `GET /health`).
    Health,
    /// `GET /v1/daemons`.
    ListDaemons,
    /// `POST /v1/daemons`.
    StartDaemon,
    /// `DELETE /v1/daemons/{role}`.
    StopDaemon(crate::DaemonRole),
}

/// Why a request matches no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// No such path (404), or a malformed identity in it.
    NotFound(String),
    /// The path exists but not with this method (405).
    MethodNotAllowed,
}

impl Route {
    /// The route of a request; the query string, if any, is ignored.
    pub fn parse(method: Method, path: &str) -> Result<Route, RouteError> {
        use Method::*;
        let path = path.split('?').next().unwrap_or_default();
        let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let not_found = || RouteError::NotFound(format!("no such resource: {path}"));
        let svc = |s: &str| {
            s.parse::<ServiceId>()
                .map_err(|e| RouteError::NotFound(e.to_string()))
        };
        let srv = |s: &str| {
            s.parse::<ServerId>()
                .map_err(|e| RouteError::NotFound(e.to_string()))
        };
        let route = match (method, segs.as_slice()) {
            (Get, ["", "v1", "services"]) => Route::ListServices,
            (Post, ["", "v1", "services"]) => Route::AddService,
            (Get, ["", "v1", "services", id]) => Route::GetService(svc(id)?),
            (Put, ["", "v1", "services", id]) => Route::EditService(svc(id)?),
            (Delete, ["", "v1", "services", id]) => Route::DeleteService(svc(id)?),
            (Post, ["", "v1", "services", id, "servers"]) => Route::AddServer(svc(id)?),
            (Put, ["", "v1", "services", id, "servers", s]) => Route::EditServer(svc(id)?, srv(s)?),
            (Delete, ["", "v1", "services", id, "servers", s]) => {
                Route::DeleteServer(svc(id)?, srv(s)?)
            }
            (Post, ["", "v1", "zero"]) => Route::Zero,
            (Get, ["", "v1", "timeouts"]) => Route::GetTimeouts,
            (Put, ["", "v1", "timeouts"]) => Route::SetTimeouts,
            (Get, ["", "v1", "connections"]) => Route::ListConnections,
            (Post, ["", "v1", "batch"]) => Route::Batch,
            (Get, ["", "v1", "health"] | ["", "health"]) => Route::Health,
            (Get, ["", "v1", "daemons"]) => Route::ListDaemons,
            (Post, ["", "v1", "daemons"]) => Route::StartDaemon,
            (Delete, ["", "v1", "daemons", role]) => Route::StopDaemon(match *role {
                "master" => crate::DaemonRole::Master,
                "backup" => crate::DaemonRole::Backup,
                _ => return Err(not_found()),
            }),
            (
                _,
                ["", "v1", "services"]
                | ["", "v1", "services", _]
                | ["", "v1", "services", _, "servers"]
                | ["", "v1", "services", _, "servers", _]
                | ["", "v1", "daemons"]
                | ["", "v1", "daemons", "master" | "backup"]
                | [
                    "",
                    "v1",
                    "zero" | "timeouts" | "connections" | "batch" | "health",
                ]
                | ["", "health"],
            ) => return Err(RouteError::MethodNotAllowed),
            _ => return Err(not_found()),
        };
        Ok(route)
    }

    /// The method of this route.
    pub fn method(&self) -> Method {
        match self {
            Route::ListServices
            | Route::GetService(_)
            | Route::GetTimeouts
            | Route::ListConnections
            | Route::Health
            | Route::ListDaemons => Method::Get,
            Route::AddService
            | Route::AddServer(_)
            | Route::Zero
            | Route::Batch
            | Route::StartDaemon => Method::Post,
            Route::EditService(_) | Route::EditServer(..) | Route::SetTimeouts => Method::Put,
            Route::DeleteService(_) | Route::DeleteServer(..) | Route::StopDaemon(_) => {
                Method::Delete
            }
        }
    }

    /// The path of this route.
    pub fn path(&self) -> String {
        match self {
            Route::ListServices | Route::AddService => "/v1/services".into(),
            Route::GetService(id) | Route::EditService(id) | Route::DeleteService(id) => {
                format!("/v1/services/{id}")
            }
            Route::AddServer(id) => format!("/v1/services/{id}/servers"),
            Route::EditServer(id, s) | Route::DeleteServer(id, s) => {
                format!("/v1/services/{id}/servers/{s}")
            }
            Route::Zero => "/v1/zero".into(),
            Route::GetTimeouts | Route::SetTimeouts => "/v1/timeouts".into(),
            Route::ListConnections => "/v1/connections".into(),
            Route::Batch => "/v1/batch".into(),
            Route::Health => "/v1/health".into(),
            Route::ListDaemons | Route::StartDaemon => "/v1/daemons".into(),
            Route::StopDaemon(r) => format!("/v1/daemons/{}", r.as_str()),
        }
    }
}

/// One line of the API's table, for documentation and help output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// The method.
    pub method: Method,
    /// The path, with `{id}` and `{server}` placeholders.
    pub path: &'static str,
    /// The request body type, `""` for none.
    pub request: &'static str,
    /// The status and body type of success.
    pub response: &'static str,
    /// What it does.
    pub doc: &'static str,
}

const fn ep(
    method: Method,
    path: &'static str,
    request: &'static str,
    response: &'static str,
    doc: &'static str,
) -> Endpoint {
    Endpoint {
        method,
        path,
        request,
        response,
        doc,
    }
}

/// Every endpoint of the API.
pub const ENDPOINTS: &[Endpoint] = &[
    ep(
        Method::Get,
        "/v1/services",
        "",
        "200 ServiceList",
        "list services with their servers, counters and rates",
    ),
    ep(
        Method::Post,
        "/v1/services",
        "ServiceSpec",
        "201 ServiceStatus",
        "add a service and its servers (-A, -a)",
    ),
    ep(
        Method::Get,
        "/v1/services/{id}",
        "",
        "200 ServiceStatus",
        "show one service",
    ),
    ep(
        Method::Put,
        "/v1/services/{id}",
        "ServiceSpec",
        "200 ServiceStatus",
        "replace a service's attributes (-E); with a server list, make its servers that list",
    ),
    ep(
        Method::Delete,
        "/v1/services/{id}",
        "",
        "204",
        "delete a service (-D)",
    ),
    ep(
        Method::Post,
        "/v1/services/{id}/servers",
        "ServerSpec",
        "201 ServiceStatus",
        "add a server (-a)",
    ),
    ep(
        Method::Put,
        "/v1/services/{id}/servers/{server}",
        "ServerSpec",
        "200 ServiceStatus",
        "replace a server's attributes (-e)",
    ),
    ep(
        Method::Delete,
        "/v1/services/{id}/servers/{server}",
        "",
        "204",
        "delete a server (-d)",
    ),
    ep(
        Method::Post,
        "/v1/zero",
        "ZeroRequest",
        "204",
        "zero counters of one service or all (-Z)",
    ),
    ep(
        Method::Get,
        "/v1/timeouts",
        "",
        "200 TimeoutsBody",
        "show timeouts (-L --timeout)",
    ),
    ep(
        Method::Put,
        "/v1/timeouts",
        "TimeoutsBody",
        "200 TimeoutsBody",
        "set timeouts; 0 leaves one as it is (--set)",
    ),
    ep(
        Method::Get,
        "/v1/connections",
        "",
        "200 ConnList",
        "list connections and templates (-L -c)",
    ),
    ep(
        Method::Post,
        "/v1/batch",
        "Batch",
        "200 BatchResult",
        "apply ipvsadm-equivalent operations atomically (-R)",
    ),
    ep(
        Method::Get,
        "/v1/health",
        "",
        "200 HealthList",
        "health of every service and server (rvsadm health); also at /health",
    ),
    ep(
        Method::Get,
        "/v1/daemons",
        "",
        "200 DaemonList",
        "list the connection synchronisation daemons (-L --daemon)",
    ),
    ep(
        Method::Post,
        "/v1/daemons",
        "DaemonSpec",
        "201 DaemonList",
        "start a sync daemon (--start-daemon); packet data plane only",
    ),
    ep(
        Method::Delete,
        "/v1/daemons/{role}",
        "",
        "204",
        "stop the master or backup sync daemon (--stop-daemon)",
    ),
];
