//! The client side: one HTTP/1.1 exchange per call over the Unix socket.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rvs_api::{
    Batch, BatchOp, BatchResult, ConnList, ConnStatus, ErrorBody, Route, ServiceList,
    ServiceStatus, SpecError, TimeoutsBody,
};
use rvs_ipvsadm::{Command, Counters5, ListConn, ListDest, ListService};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

/// How long one call may take in all (connect, request, answer): the
/// daemon answers from memory, so anything slower means it is stuck.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers on the socket: the daemon is not running, or runs
    /// with another `--control` path.
    #[error("cannot connect to rvsd at {}: {source} (is rvsd running? use --control PATH for another socket)", path.display())]
    Unreachable {
        /// The socket path tried.
        path: PathBuf,
        /// The connect error.
        source: io::Error,
    },
    /// The daemon refused the request; the message is its own.
    #[error("{message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The daemon's message.
        message: String,
    },
    /// The exchange itself failed (connection dropped, unreadable answer,
    /// timeout).
    #[error("control socket {}: {message}", path.display())]
    Protocol {
        /// The socket path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A command that changes no rules was given to [`Client::apply`].
    #[error("{0:?} does not change rules")]
    NotARule(Box<Command>),
}

/// A client of the control API on a Unix socket.
#[derive(Debug, Clone)]
pub struct Client {
    path: PathBuf,
}

impl Client {
    /// A client of the daemon listening on `path`; nothing is connected
    /// until the first call.
    pub fn new(path: impl Into<PathBuf>) -> Client {
        Client { path: path.into() }
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn protocol(&self, message: impl Into<String>) -> ClientError {
        ClientError::Protocol {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    /// One raw exchange: the status and body of the answer.
    pub async fn request(
        &self,
        method: rvs_api::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        match tokio::time::timeout(CALL_TIMEOUT, self.exchange(method, path, body)).await {
            Ok(r) => r,
            Err(_) => Err(self.protocol(format!("no answer within {} s", CALL_TIMEOUT.as_secs()))),
        }
    }

    async fn exchange(
        &self,
        method: rvs_api::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let stream =
            UnixStream::connect(&self.path)
                .await
                .map_err(|source| ClientError::Unreachable {
                    path: self.path.clone(),
                    source,
                })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.protocol(e.to_string()))?;
        // The connection task ends when the exchange is over (the sender is
        // dropped at the end of this function).
        let driver = tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .method(method.as_str())
            .uri(path)
            .header(hyper::header::HOST, "rvsd");
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| self.protocol(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| self.protocol(e.to_string()))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.protocol(e.to_string()))?
            .to_bytes();
        drop(sender);
        driver.abort();
        Ok((status, bytes.to_vec()))
    }

    /// Calls a route with an optional JSON body; a 2xx answer is decoded as
    /// `T` (an empty answer as JSON `null`), anything else is
    /// [`ClientError::Refused`] with the daemon's message.
    pub async fn call<T: DeserializeOwned>(
        &self,
        route: Route,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, ClientError> {
        let body = match body {
            Some(b) => Some(serde_json::to_vec(b).map_err(|e| self.protocol(e.to_string()))?),
            None => None,
        };
        let (status, answer) = self.request(route.method(), &route.path(), body).await?;
        if !(200..300).contains(&status) {
            let message = serde_json::from_slice::<ErrorBody>(&answer)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&answer).into_owned());
            return Err(ClientError::Refused { status, message });
        }
        let answer: &[u8] = if answer.is_empty() { b"null" } else { &answer };
        serde_json::from_slice(answer)
            .map_err(|e| self.protocol(format!("unreadable answer to {}: {e}", route.path())))
    }

    /// Applies rule-changing ipvsadm commands as one batch: all of them or,
    /// when the daemon refuses one, none.
    pub async fn apply(&self, cmds: &[Command]) -> Result<(), ClientError> {
        let ops = cmds
            .iter()
            .map(|c| {
                BatchOp::from_command(c).ok_or_else(|| ClientError::NotARule(Box::new(c.clone())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let _: BatchResult = self.call(Route::Batch, Some(&Batch { ops })).await?;
        Ok(())
    }

    /// Every service with its servers, counters and rates.
    pub async fn services(&self) -> Result<ServiceList, ClientError> {
        self.call(Route::ListServices, None::<&()>).await
    }

    /// Every connection and persistence template.
    pub async fn connections(&self) -> Result<ConnList, ClientError> {
        self.call(Route::ListConnections, None::<&()>).await
    }

    /// Every service's health (`GET /v1/health`).
    pub async fn health(&self) -> Result<rvs_api::HealthList, ClientError> {
        self.call(Route::Health, None::<&()>).await
    }

    /// Starts a connection synchronisation daemon.
    pub async fn start_daemon(
        &self,
        spec: &rvs_api::DaemonSpec,
    ) -> Result<rvs_api::DaemonList, ClientError> {
        self.call(Route::StartDaemon, Some(spec)).await
    }

    /// Stops the sync daemon of `role`.
    pub async fn stop_daemon(&self, role: rvs_api::DaemonRole) -> Result<(), ClientError> {
        let _: Option<()> = self.call(Route::StopDaemon(role), None::<&()>).await?;
        Ok(())
    }

    /// The running sync daemons.
    pub async fn daemons(&self) -> Result<rvs_api::DaemonList, ClientError> {
        self.call(Route::ListDaemons, None::<&()>).await
    }

    /// The connection timeouts.
    pub async fn timeouts(&self) -> Result<TimeoutsBody, ClientError> {
        self.call(Route::GetTimeouts, None::<&()>).await
    }
}

fn counters(c: &rvs_api::Counters) -> Counters5 {
    Counters5 {
        conns: c.conns,
        inpkts: c.inpkts,
        outpkts: c.outpkts,
        inbytes: c.inbytes,
        outbytes: c.outbytes,
    }
}

fn rates(r: &rvs_api::Rates) -> Counters5 {
    Counters5 {
        conns: r.cps,
        inpkts: r.inpps,
        outpkts: r.outpps,
        inbytes: r.inbps,
        outbytes: r.outbps,
    }
}

/// A service as the daemon reports it, as an `ipvsadm -L` row.
pub fn list_service(s: &ServiceStatus) -> Result<ListService, SpecError> {
    let config = s.service.to_service_config()?;
    let dests = s
        .servers
        .iter()
        .map(|d| {
            Ok(ListDest {
                config: d.server.to_core(&config.key)?,
                active: d.active,
                inactive: d.inactive,
                persistent: d.persistent,
                stats: counters(&d.stats),
                rates: rates(&d.rates),
            })
        })
        .collect::<Result<Vec<_>, SpecError>>()?;
    Ok(ListService {
        config,
        stats: counters(&s.stats),
        rates: rates(&s.rates),
        dests,
    })
}

/// A connection as the daemon reports it, as an `ipvsadm -Lc` row.
pub fn list_conn(c: &ConnStatus) -> ListConn {
    ListConn {
        proto_name: match c.protocol {
            6 => "TCP",
            17 => "UDP",
            132 => "SCTP",
            // A fwmark service's template carries IPPROTO_IP.
            _ => "IP",
        }
        .to_string(),
        caddr: c.client.ip(),
        cport: c.client.port(),
        vaddr: c.virtual_addr.ip(),
        vport: c.virtual_addr.port(),
        daddr: c.server.ip(),
        dport: c.server.port(),
        state: c.state.clone(),
        expires_secs: c.expires_ms / 1000,
        pe: None,
    }
}
