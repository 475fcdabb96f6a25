//! The IPVS SCTP state machine: fourteen states seen from the director,
//! driven by the type of the first chunk of each packet and the packet's
//! direction.
//!
//! The states describe the association as the real server sees it. Beyond
//! the RFC 4960 diagram there are: `INIT1` (first client INIT, short timeout
//! so dropped INITs do not linger), `REJECTED` (INIT answered by ABORT,
//! short timeout), and the `INIT`/`COOKIE_*` states that split the RFC's
//! CLOSED-state handshake for visibility. `COOKIE_WAIT`, `COOKIE` and
//! `COOKIE_ECHOED` are the handshake the real server starts itself.
//!
//! Only `ESTABLISHED` counts as an active connection; every other state
//! counts as inactive.

use crate::state::Direction;

/// SCTP connection states, in the kernel's index order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum SctpState {
    /// NONE (0): no chunk seen yet.
    None = 0,
    /// INIT1 (1): first client INIT sent, waiting for the server's INIT ACK.
    Init1,
    /// INIT (2): a further client INIT sent, waiting for INIT ACK.
    Init,
    /// COOKIE_SENT (3), "C-SENT": server sent INIT ACK, waiting for the
    /// client's COOKIE ECHO.
    CookieSent,
    /// COOKIE_REPLIED (4), "C-REPLIED": client sent COOKIE ECHO, waiting for
    /// the server's COOKIE ACK.
    CookieReplied,
    /// COOKIE_WAIT (5), "C-WAIT": server sent INIT, waiting for the client's
    /// INIT ACK.
    CookieWait,
    /// COOKIE (6): client sent INIT ACK, waiting for the server's COOKIE ECHO.
    Cookie,
    /// COOKIE_ECHOED (7), "C-ECHOED": server sent COOKIE ECHO, waiting for
    /// the client's COOKIE ACK.
    CookieEchoed,
    /// ESTABLISHED (8).
    Established,
    /// SHUTDOWN_SENT (9), "S-SENT".
    ShutdownSent,
    /// SHUTDOWN_RECEIVED (10), "S-RECEIVED".
    ShutdownReceived,
    /// SHUTDOWN_ACK_SENT (11), "S-ACK-SENT".
    ShutdownAckSent,
    /// REJECTED (12): the INIT was answered with ABORT.
    Rejected,
    /// CLOSED (13).
    Closed,
}

/// Number of SCTP states.
pub const SCTP_STATES: usize = 14;

/// Retransmission ceiling the handshake and shutdown states wait for:
/// the protocol's maximum RTO (60 s) plus one second.
const MAX_RTO_SECS: u32 = 61;

impl SctpState {
    /// All states in index order.
    pub const ALL: [SctpState; SCTP_STATES] = [
        SctpState::None,
        SctpState::Init1,
        SctpState::Init,
        SctpState::CookieSent,
        SctpState::CookieReplied,
        SctpState::CookieWait,
        SctpState::Cookie,
        SctpState::CookieEchoed,
        SctpState::Established,
        SctpState::ShutdownSent,
        SctpState::ShutdownReceived,
        SctpState::ShutdownAckSent,
        SctpState::Rejected,
        SctpState::Closed,
    ];

    /// The kernel's state index.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The state with kernel index `i`, if there is one.
    pub fn from_index(i: usize) -> Option<SctpState> {
        Self::ALL.get(i).copied()
    }

    /// The name `/proc/net/ip_vs_conn` and `ipvsadm -lc` print.
    pub fn name(self) -> &'static str {
        match self {
            SctpState::None => "NONE",
            SctpState::Init1 => "INIT1",
            SctpState::Init => "INIT",
            SctpState::CookieSent => "C-SENT",
            SctpState::CookieReplied => "C-REPLIED",
            SctpState::CookieWait => "C-WAIT",
            SctpState::Cookie => "COOKIE",
            SctpState::CookieEchoed => "C-ECHOED",
            SctpState::Established => "ESTABLISHED",
            SctpState::ShutdownSent => "S-SENT",
            SctpState::ShutdownReceived => "S-RECEIVED",
            SctpState::ShutdownAckSent => "S-ACK-SENT",
            SctpState::Rejected => "REJECTED",
            SctpState::Closed => "CLOSED",
        }
    }

    /// Whether a connection in this state counts in `ActiveConn`.
    pub fn is_active(self) -> bool {
        self == SctpState::Established
    }

    /// Default timeout of the state, in seconds.
    pub fn default_timeout_secs(self) -> u32 {
        match self {
            SctpState::None => 2,
            SctpState::Init1 | SctpState::Rejected => 4,
            SctpState::Established => 15 * 60,
            SctpState::Init
            | SctpState::CookieSent
            | SctpState::CookieReplied
            | SctpState::CookieWait
            | SctpState::Cookie
            | SctpState::CookieEchoed
            | SctpState::ShutdownSent
            | SctpState::ShutdownReceived
            | SctpState::ShutdownAckSent
            | SctpState::Closed => MAX_RTO_SECS,
        }
    }
}

/// State machine events, one per relevant chunk type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SctpEvent {
    /// DATA, and every chunk that does not change the association (SACK,
    /// HEARTBEAT, HEARTBEAT ACK, ECNE, CWR, and unknown types).
    Data = 0,
    /// INIT.
    Init,
    /// INIT ACK.
    InitAck,
    /// COOKIE ECHO.
    CookieEcho,
    /// COOKIE ACK.
    CookieAck,
    /// SHUTDOWN.
    Shutdown,
    /// SHUTDOWN ACK.
    ShutdownAck,
    /// SHUTDOWN COMPLETE.
    ShutdownComplete,
    /// ERROR.
    Error,
    /// ABORT.
    Abort,
}

/// SCTP chunk type numbers (RFC 4960 §3.2).
pub mod chunk {
    /// DATA.
    pub const DATA: u8 = 0;
    /// INIT.
    pub const INIT: u8 = 1;
    /// INIT ACK.
    pub const INIT_ACK: u8 = 2;
    /// SACK.
    pub const SACK: u8 = 3;
    /// HEARTBEAT.
    pub const HEARTBEAT: u8 = 4;
    /// HEARTBEAT ACK.
    pub const HEARTBEAT_ACK: u8 = 5;
    /// ABORT.
    pub const ABORT: u8 = 6;
    /// SHUTDOWN.
    pub const SHUTDOWN: u8 = 7;
    /// SHUTDOWN ACK.
    pub const SHUTDOWN_ACK: u8 = 8;
    /// ERROR.
    pub const ERROR: u8 = 9;
    /// COOKIE ECHO.
    pub const COOKIE_ECHO: u8 = 10;
    /// COOKIE ACK.
    pub const COOKIE_ACK: u8 = 11;
    /// ECNE.
    pub const ECNE: u8 = 12;
    /// CWR.
    pub const CWR: u8 = 13;
    /// SHUTDOWN COMPLETE.
    pub const SHUTDOWN_COMPLETE: u8 = 14;
}

/// The event a chunk type stands for. Types 0..=14 map as their names say
/// (SACK, HEARTBEAT, HEARTBEAT ACK, ECNE and CWR count as DATA); any other
/// type, including all extension chunks, counts as DATA.
pub fn sctp_event_from_chunk_type(chunk_type: u8) -> SctpEvent {
    match chunk_type {
        chunk::INIT => SctpEvent::Init,
        chunk::INIT_ACK => SctpEvent::InitAck,
        chunk::ABORT => SctpEvent::Abort,
        chunk::SHUTDOWN => SctpEvent::Shutdown,
        chunk::SHUTDOWN_ACK => SctpEvent::ShutdownAck,
        chunk::ERROR => SctpEvent::Error,
        chunk::COOKIE_ECHO => SctpEvent::CookieEcho,
        chunk::COOKIE_ACK => SctpEvent::CookieAck,
        chunk::SHUTDOWN_COMPLETE => SctpEvent::ShutdownComplete,
        _ => SctpEvent::Data,
    }
}

/// The event of a whole packet from its first chunk's type and, if the
/// packet holds one, the type of the chunk after it.
///
/// Only the first chunk decides, except that a COOKIE ECHO or COOKIE ACK
/// followed by an ABORT counts as ABORT (ABORT may be bundled after control
/// chunks). The caller passes `second` only when the first chunk's length
/// field is at least the 4-byte chunk header and a chunk header follows at
/// the first chunk's length rounded up to 4 bytes.
pub fn sctp_packet_event(first: u8, second: Option<u8>) -> SctpEvent {
    if matches!(first, chunk::COOKIE_ECHO | chunk::COOKIE_ACK) && second == Some(chunk::ABORT) {
        return SctpEvent::Abort;
    }
    sctp_event_from_chunk_type(first)
}

// Short names for the transition tables (no transition leads to NONE).
const I1: SctpState = SctpState::Init1;
const IN: SctpState = SctpState::Init;
const CS: SctpState = SctpState::CookieSent;
const CR: SctpState = SctpState::CookieReplied;
const CW: SctpState = SctpState::CookieWait;
const CO: SctpState = SctpState::Cookie;
const CE: SctpState = SctpState::CookieEchoed;
const ES: SctpState = SctpState::Established;
const SS: SctpState = SctpState::ShutdownSent;
const SR: SctpState = SctpState::ShutdownReceived;
const SA: SctpState = SctpState::ShutdownAckSent;
const RJ: SctpState = SctpState::Rejected;
const CL: SctpState = SctpState::Closed;

type Table = [[SctpState; SCTP_STATES]; 10];

// Rows: events in `SctpEvent` order; columns: current state in index order
//        NO  I1  IN  CS  CR  CW  CO  CE  ES  SS  SR  SA  RJ  CL

/// Client → server, output seen (or NAT).
const INPUT: Table = [
    /* DATA      */ [ES, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
    /* INIT      */ [I1, IN, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, IN, IN],
    /* INIT_ACK  */ [CW, CW, CW, CS, CR, CO, CO, CE, ES, SS, SR, SA, RJ, CL],
    /* C_ECHO    */ [CR, IN, IN, CR, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
    /* C_ACK     */ [ES, I1, IN, CS, CR, CW, CO, ES, ES, SS, SR, SA, RJ, CL],
    /* SHUT      */ [SR, I1, IN, CS, CR, CW, CO, CE, SR, SS, SR, SA, RJ, CL],
    /* SHUT_ACK  */ [CL, IN, IN, CS, CR, CW, CO, CE, ES, CL, SR, CL, RJ, CL],
    /* SHUT_COMP */ [CL, CL, CL, CS, CR, CW, CO, CE, ES, SS, SR, CL, RJ, CL],
    /* ERROR     */ [CL, I1, IN, CS, CR, CW, CO, CL, ES, SS, SR, SA, RJ, CL],
    /* ABORT     */ [CL, CL, CL, CL, CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL],
];

/// Server → client.
const OUTPUT: Table = [
    /* DATA      */ [ES, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
    /* INIT      */ [CW, CW, CW, CW, CW, CW, CW, CW, ES, CW, CW, CW, CW, CW],
    /* INIT_ACK  */ [CS, CS, CS, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
    /* C_ECHO    */ [CE, CE, CE, CE, CE, CE, CE, CE, ES, SS, SR, SA, RJ, CL],
    /* C_ACK     */ [ES, ES, ES, ES, ES, ES, ES, ES, ES, SS, SR, SA, RJ, CL],
    /* SHUT      */ [SS, SS, SS, SS, SS, SS, SS, SS, SS, SS, SR, SA, RJ, CL],
    /* SHUT_ACK  */ [SA, SA, SA, SA, SA, CW, CO, CE, ES, SA, SA, SA, RJ, CL],
    /* SHUT_COMP */ [CL, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
    /* ERROR     */ [CL, CL, CL, CL, CL, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
    /* ABORT     */ [CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL],
];

/// Client → server on a connection that has seen no output (DR/TUN): the
/// server's replies are never seen, so client chunks stand for both sides.
const INPUT_ONLY: Table = [
    /* DATA      */ [ES, I1, IN, CS, CR, ES, CO, CE, ES, SS, SR, SA, RJ, CL],
    /* INIT      */ [I1, IN, IN, IN, IN, IN, CO, CE, ES, SS, SR, SA, IN, IN],
    /* INIT_ACK  */ [CE, CE, CE, CE, CE, CE, CO, CE, ES, SS, SR, SA, RJ, CL],
    /* C_ECHO    */ [ES, ES, ES, ES, ES, ES, CO, CE, ES, SS, SR, SA, RJ, CL],
    /* C_ACK     */ [ES, I1, IN, ES, ES, CW, ES, ES, ES, SS, SR, SA, RJ, CL],
    /* SHUT      */ [SR, I1, IN, CS, CR, CW, CO, CE, SR, SS, SR, SA, RJ, CL],
    /* SHUT_ACK  */ [CL, IN, IN, CS, CR, CW, CO, CE, CL, CL, SR, CL, RJ, CL],
    /* SHUT_COMP */ [CL, CL, CL, CL, CL, CW, CO, CE, ES, SS, CL, CL, RJ, CL],
    /* ERROR     */ [CL, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
    /* ABORT     */ [CL, CL, CL, CL, CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL],
];

/// The state after a packet with `event` travelling in `dir`.
///
/// `dir` is the table to use: the caller passes [`Direction::InputOnly`] for
/// a client packet on a connection that has not yet seen a server packet
/// (the no-output flag), and clears that flag on the first
/// [`Direction::Output`] packet, exactly as for TCP.
pub fn sctp_transition(state: SctpState, dir: Direction, event: SctpEvent) -> SctpState {
    let table = match dir {
        Direction::Input => &INPUT,
        Direction::Output => &OUTPUT,
        Direction::InputOnly => &INPUT_ONLY,
    };
    table[event as usize][state.index()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::{Input, InputOnly, Output};
    use SctpEvent::*;

    fn walk(start: SctpState, steps: &[(Direction, SctpEvent, SctpState)]) {
        let mut s = start;
        for &(dir, ev, want) in steps {
            let next = sctp_transition(s, dir, ev);
            assert_eq!(next, want, "{} --{dir:?} {ev:?}-->", s.name());
            s = next;
        }
    }

    #[test]
    fn client_association_nat() {
        walk(
            SctpState::None,
            &[
                (Input, Init, SctpState::Init1),
                (Output, InitAck, SctpState::CookieSent),
                (Input, CookieEcho, SctpState::CookieReplied),
                (Output, CookieAck, SctpState::Established),
                (Input, Data, SctpState::Established),
                (Output, Data, SctpState::Established),
                // Client closes.
                (Input, Shutdown, SctpState::ShutdownReceived),
                (Output, ShutdownAck, SctpState::ShutdownAckSent),
                (Input, ShutdownComplete, SctpState::Closed),
            ],
        );
        // Server closes: the client's SHUTDOWN ACK closes at once.
        walk(
            SctpState::Established,
            &[
                (Output, Shutdown, SctpState::ShutdownSent),
                (Input, ShutdownAck, SctpState::Closed),
                (Output, ShutdownComplete, SctpState::Closed),
            ],
        );
    }

    #[test]
    fn server_started_association_nat() {
        walk(
            SctpState::None,
            &[
                (Output, Init, SctpState::CookieWait),
                (Input, InitAck, SctpState::Cookie),
                (Output, CookieEcho, SctpState::CookieEchoed),
                (Input, CookieAck, SctpState::Established),
            ],
        );
    }

    #[test]
    fn client_association_input_only() {
        walk(
            SctpState::None,
            &[
                (InputOnly, Init, SctpState::Init1),
                (InputOnly, Init, SctpState::Init),
                (InputOnly, CookieEcho, SctpState::Established),
                (InputOnly, Data, SctpState::Established),
                (InputOnly, Shutdown, SctpState::ShutdownReceived),
                (InputOnly, ShutdownAck, SctpState::ShutdownReceived),
                (InputOnly, ShutdownComplete, SctpState::Closed),
            ],
        );
        // Client answers a server SHUTDOWN: closed at once.
        assert_eq!(
            sctp_transition(SctpState::Established, InputOnly, ShutdownAck),
            SctpState::Closed
        );
    }

    #[test]
    fn abort() {
        for s in SctpState::ALL {
            let want_in = if s == SctpState::CookieWait {
                SctpState::Rejected
            } else {
                SctpState::Closed
            };
            assert_eq!(sctp_transition(s, Input, Abort), want_in);
            assert_eq!(sctp_transition(s, InputOnly, Abort), want_in);
            let want_out = if s == SctpState::Init1 {
                SctpState::Rejected
            } else {
                SctpState::Closed
            };
            assert_eq!(sctp_transition(s, Output, Abort), want_out);
        }
        // A rejected INIT retried by the client starts over.
        assert_eq!(
            sctp_transition(SctpState::Rejected, Input, Init),
            SctpState::Init
        );
    }

    #[test]
    fn hand_checked_cells() {
        // Data on a fresh connection counts as established.
        assert_eq!(
            sctp_transition(SctpState::None, Input, Data),
            SctpState::Established
        );
        // Server INIT in ESTABLISHED (restart) is ignored.
        assert_eq!(
            sctp_transition(SctpState::Established, Output, Init),
            SctpState::Established
        );
        // Server INIT in a closed association starts its own handshake.
        assert_eq!(
            sctp_transition(SctpState::Closed, Output, Init),
            SctpState::CookieWait
        );
        // ERROR while the server waits for COOKIE ACK ends it.
        assert_eq!(
            sctp_transition(SctpState::CookieEchoed, Input, Error),
            SctpState::Closed
        );
        // Input-only DATA completes a server-started handshake.
        assert_eq!(
            sctp_transition(SctpState::CookieWait, InputOnly, Data),
            SctpState::Established
        );
        // Output ERROR before establishment closes.
        assert_eq!(
            sctp_transition(SctpState::Init1, Output, Error),
            SctpState::Closed
        );
        // SHUTDOWN COMPLETE from the server on a fresh entry.
        assert_eq!(
            sctp_transition(SctpState::None, Output, ShutdownComplete),
            SctpState::Closed
        );
    }

    #[test]
    fn chunk_types() {
        let want = [
            Data,
            Init,
            InitAck,
            Data,
            Data,
            Data,
            Abort,
            Shutdown,
            ShutdownAck,
            Error,
            CookieEcho,
            CookieAck,
            Data,
            Data,
            ShutdownComplete,
        ];
        for (t, ev) in want.into_iter().enumerate() {
            assert_eq!(sctp_event_from_chunk_type(t as u8), ev, "type {t}");
        }
        for t in 15..=255u8 {
            assert_eq!(sctp_event_from_chunk_type(t), Data);
        }
        assert_eq!(
            sctp_packet_event(chunk::COOKIE_ECHO, Some(chunk::ABORT)),
            Abort
        );
        assert_eq!(
            sctp_packet_event(chunk::COOKIE_ACK, Some(chunk::ABORT)),
            Abort
        );
        assert_eq!(
            sctp_packet_event(chunk::COOKIE_ACK, Some(chunk::DATA)),
            CookieAck
        );
        assert_eq!(sctp_packet_event(chunk::DATA, Some(chunk::ABORT)), Data);
        assert_eq!(sctp_packet_event(chunk::SACK, None), Data);
    }

    #[test]
    fn names_timeouts_active() {
        let names: Vec<_> = SctpState::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "NONE",
                "INIT1",
                "INIT",
                "C-SENT",
                "C-REPLIED",
                "C-WAIT",
                "COOKIE",
                "C-ECHOED",
                "ESTABLISHED",
                "S-SENT",
                "S-RECEIVED",
                "S-ACK-SENT",
                "REJECTED",
                "CLOSED"
            ]
        );
        let t: Vec<_> = SctpState::ALL
            .iter()
            .map(|s| s.default_timeout_secs())
            .collect();
        assert_eq!(t, [2, 4, 61, 61, 61, 61, 61, 61, 900, 61, 61, 61, 4, 61]);
        let active: Vec<_> = SctpState::ALL
            .into_iter()
            .filter(|s| s.is_active())
            .collect();
        assert_eq!(active, [SctpState::Established]);
        for (i, s) in SctpState::ALL.into_iter().enumerate() {
            assert_eq!(s.index(), i);
            assert_eq!(SctpState::from_index(i), Some(s));
        }
        assert_eq!(SctpState::from_index(14), None);
    }
}
