//! The probe executors against in-process servers on 127.0.0.1.

mod bound;
mod dns;
mod http;
mod https;
mod misc;
mod support;
mod tcp;
mod udp;
