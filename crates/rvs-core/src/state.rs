//! IPVS protocol state machines (TCP normal and secure tables, UDP, SCTP)
//! and their per-state timeouts.
//!
//! STUB: signatures fixed, bodies to be written.

use crate::model::Timeouts;

/// TCP connection states, in the kernel's index order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    /// NONE (0).
    None = 0,
    /// ESTABLISHED (1).
    Established,
    /// SYN_SENT (2).
    SynSent,
    /// SYN_RECV (3).
    SynRecv,
    /// FIN_WAIT (4).
    FinWait,
    /// TIME_WAIT (5).
    TimeWait,
    /// CLOSE (6).
    Close,
    /// CLOSE_WAIT (7).
    CloseWait,
    /// LAST_ACK (8).
    LastAck,
    /// LISTEN (9).
    Listen,
    /// SYNACK (10).
    SynAck,
}

/// Which way a packet travels, and which state table applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to real server, output seen before (or NAT/proxy).
    Input,
    /// Real server to client.
    Output,
    /// Client to real server on a connection that has seen no output (DR/TUN).
    InputOnly,
}

/// The TCP flags that drive the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags {
    /// SYN.
    pub syn: bool,
    /// FIN.
    pub fin: bool,
    /// ACK.
    pub ack: bool,
    /// RST.
    pub rst: bool,
}
