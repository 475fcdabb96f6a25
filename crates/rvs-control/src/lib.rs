//! The control API of `rvsd` on a Unix socket: the HTTP server the daemon
//! runs ([`serve`]), the socket it listens on ([`bind`],
//! [`default_socket_path`]) and the client `rvsadm` talks to it with
//! ([`Client`]).
//!
//! The wire format (routes and JSON bodies) is defined in `rvs-api`; this
//! crate only moves it over HTTP/1.1. Every change a request asks for is
//! turned into ipvsadm commands and handed to [`rvs_api::Control::apply`]
//! in one call, so it is checked in full before anything changes and is
//! applied all or nothing.
//!
//! Access control is the socket file's: it is created owner-only (0600) in
//! an owner-only directory (0700), so only the daemon's user (and root) can
//! change the director.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod server;
mod socket;

pub use client::{Client, ClientError, list_conn, list_service};
pub use server::serve;
pub use socket::{bind, default_socket_path};
