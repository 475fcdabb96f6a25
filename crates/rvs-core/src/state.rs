//! IPVS protocol state machines for TCP (the normal and the `secure_tcp`
//! tables, each with input, output and input-only directions) and UDP, and
//! the per-state timeouts.
//!
//! The tables are the kernel's `tcp_states` and `tcp_states_dos`: a TCP
//! segment selects an event by its flags with priority RST > SYN > FIN >
//! ACK, and the event plus the direction selects a row whose entry for the
//! current state is the next state. A segment with none of the four flags
//! moves the connection to CLOSE.

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

/// Number of TCP states.
pub const TCP_STATE_COUNT: usize = 11;

impl TcpState {
    /// Every state in index order.
    pub const ALL: [TcpState; TCP_STATE_COUNT] = [
        TcpState::None,
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::SynAck,
    ];

    /// The state with this index, if any.
    pub fn from_index(i: u8) -> Option<TcpState> {
        TcpState::ALL.get(usize::from(i)).copied()
    }

    /// The kernel's index of the state (also the sync wire value).
    pub fn index(self) -> u8 {
        self as u8
    }

    /// The name `ipvsadm -Lc` and `/proc/net/ip_vs_conn` print.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::SynAck => "SYNACK",
        }
    }

    /// Whether a connection in this state counts as active (kernel ≥ 4.x:
    /// the handshake states and ESTABLISHED).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            TcpState::Established | TcpState::SynSent | TcpState::SynRecv | TcpState::SynAck
        )
    }

    /// The kernel's default timeout of the state, in seconds.
    pub fn default_timeout(self) -> u32 {
        match self {
            TcpState::None => 2,
            TcpState::Established => 900,
            TcpState::SynSent => 120,
            TcpState::SynRecv => 60,
            TcpState::FinWait => 120,
            TcpState::TimeWait => 120,
            TcpState::Close => 10,
            TcpState::CloseWait => 60,
            TcpState::LastAck => 30,
            TcpState::Listen => 120,
            TcpState::SynAck => 120,
        }
    }
}

/// Which way a packet travels, and which state table applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to real server, on a connection whose replies the director sees.
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

impl TcpFlags {
    /// A bare SYN.
    pub const SYN: TcpFlags = TcpFlags {
        syn: true,
        fin: false,
        ack: false,
        rst: false,
    };
    /// SYN+ACK.
    pub const SYN_ACK: TcpFlags = TcpFlags {
        syn: true,
        fin: false,
        ack: true,
        rst: false,
    };
    /// A bare ACK.
    pub const ACK: TcpFlags = TcpFlags {
        syn: false,
        fin: false,
        ack: true,
        rst: false,
    };
    /// FIN+ACK.
    pub const FIN_ACK: TcpFlags = TcpFlags {
        syn: false,
        fin: true,
        ack: true,
        rst: false,
    };
    /// RST.
    pub const RST: TcpFlags = TcpFlags {
        syn: false,
        fin: false,
        ack: false,
        rst: true,
    };

    /// From the flags byte of a TCP header (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10).
    pub fn from_byte(b: u8) -> TcpFlags {
        TcpFlags {
            fin: b & 0x01 != 0,
            syn: b & 0x02 != 0,
            rst: b & 0x04 != 0,
            ack: b & 0x10 != 0,
        }
    }

    /// The table row the flags select: RST > SYN > FIN > ACK; `None` when
    /// no flag is set (the connection then goes to CLOSE).
    fn event(self) -> Option<usize> {
        if self.rst {
            Some(3)
        } else if self.syn {
            Some(0)
        } else if self.fin {
            Some(1)
        } else if self.ack {
            Some(2)
        } else {
            None
        }
    }
}

use TcpState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    SynAck as SA, SynRecv as SR, SynSent as SS, TimeWait as TW,
};

type Row = [TcpState; TCP_STATE_COUNT];

/// The normal table: `[direction][event]`, columns in state index order.
/// Directions: input, output, input-only; events: syn, fin, ack, rst.
/// NONE, in the tables' shorthand (unused: no transition leads to NONE).
#[allow(dead_code)]
const NO: TcpState = TcpState::None;

const TCP_STATES: [[Row; 4]; 3] = [
    [
        /*syn*/ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /*fin*/ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
    ],
    [
        /*syn*/ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
        /*fin*/ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        /*rst*/ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    [
        /*syn*/ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /*fin*/ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// The `secure_tcp` table: like the normal one, except that a connection
/// needs the handshake seen both ways before it is ESTABLISHED, and SYNs on
/// a connection that has seen no output land in SYNACK.
const TCP_STATES_DOS: [[Row; 4]; 3] = [
    [
        /*syn*/ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SA],
        /*fin*/ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, SA],
        /*ack*/ [ES, ES, SS, SR, FW, TW, CL, CW, CL, LI, SA],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
    [
        /*syn*/ [SS, ES, SS, SA, SS, SS, SS, SS, SS, LI, SA],
        /*fin*/ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        /*rst*/ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    [
        /*syn*/ [SA, ES, ES, SR, SA, SA, SA, SA, SA, SA, SA],
        /*fin*/ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// The next TCP state for a segment with `flags` travelling in `dir`.
pub fn tcp_transition(state: TcpState, dir: Direction, flags: TcpFlags, secure: bool) -> TcpState {
    let Some(event) = flags.event() else {
        return TcpState::Close;
    };
    let d = match dir {
        Direction::Input => 0,
        Direction::Output => 1,
        Direction::InputOnly => 2,
    };
    let table = if secure { &TCP_STATES_DOS } else { &TCP_STATES };
    table[d][event][state as usize]
}

/// The UDP state name (UDP has one state).
pub const UDP_STATE_NAME: &str = "UDP";

/// Per-state timeouts in seconds, as `--set` leaves them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateTimeouts {
    /// TCP timeouts by state index.
    pub tcp: [u32; TCP_STATE_COUNT],
    /// The UDP timeout.
    pub udp: u32,
}

impl Default for StateTimeouts {
    fn default() -> Self {
        let mut tcp = [0; TCP_STATE_COUNT];
        for s in TcpState::ALL {
            tcp[s as usize] = s.default_timeout();
        }
        StateTimeouts { tcp, udp: 300 }
    }
}

impl StateTimeouts {
    /// `ipvsadm --set tcp tcpfin udp`: a zero leaves that timeout unchanged.
    pub fn apply_set(&mut self, t: Timeouts) {
        if t.tcp != 0 {
            self.tcp[TcpState::Established as usize] = t.tcp;
        }
        if t.tcp_fin != 0 {
            self.tcp[TcpState::FinWait as usize] = t.tcp_fin;
        }
        if t.udp != 0 {
            self.udp = t.udp;
        }
    }

    /// What `ipvsadm --timeout` shows.
    pub fn shown(&self) -> Timeouts {
        Timeouts {
            tcp: self.tcp[TcpState::Established as usize],
            tcp_fin: self.tcp[TcpState::FinWait as usize],
            udp: self.udp,
        }
    }

    /// Timeout of a TCP state.
    pub fn tcp(&self, s: TcpState) -> u32 {
        self.tcp[s as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(secure: bool, steps: &[(Direction, TcpFlags)]) -> Vec<TcpState> {
        let mut s = TcpState::None;
        steps
            .iter()
            .map(|&(d, f)| {
                s = tcp_transition(s, d, f, secure);
                s
            })
            .collect()
    }

    #[test]
    fn masq_open_and_close_end_in_time_wait() {
        use Direction::*;
        let open = walk(
            false,
            &[
                (Input, TcpFlags::SYN),
                (Output, TcpFlags::SYN_ACK),
                (Input, TcpFlags::ACK),
            ],
        );
        assert_eq!(open, vec![SR, SR, ES]);
        let mut s = ES;
        for (d, f) in [
            (Input, TcpFlags::FIN_ACK),
            (Output, TcpFlags::ACK),
            (Output, TcpFlags::FIN_ACK),
            (Input, TcpFlags::ACK),
        ] {
            s = tcp_transition(s, d, f, false);
        }
        assert_eq!(s, TW);
    }

    #[test]
    fn input_only_close_ends_in_fin_wait() {
        use Direction::*;
        let s = walk(
            false,
            &[
                (InputOnly, TcpFlags::SYN),
                (InputOnly, TcpFlags::ACK),
                (InputOnly, TcpFlags::FIN_ACK),
                (InputOnly, TcpFlags::ACK),
            ],
        );
        assert_eq!(s, vec![SR, ES, FW, FW]);
    }

    #[test]
    fn secure_table_needs_both_halves_of_the_handshake() {
        use Direction::*;
        // A client that only ACKs never gets to ESTABLISHED on a NAT conn.
        assert_eq!(
            walk(true, &[(Input, TcpFlags::SYN), (Input, TcpFlags::ACK)]),
            vec![SR, SR]
        );
        assert_eq!(
            walk(
                true,
                &[
                    (Input, TcpFlags::SYN),
                    (Output, TcpFlags::SYN_ACK),
                    (Input, TcpFlags::ACK)
                ]
            ),
            vec![SR, SA, SA]
        );
        assert_eq!(walk(true, &[(InputOnly, TcpFlags::SYN)]), vec![SA]);
    }

    #[test]
    fn flags_priority_and_no_flags() {
        let rst_syn = TcpFlags {
            syn: true,
            rst: true,
            ..TcpFlags::default()
        };
        assert_eq!(tcp_transition(ES, Direction::Input, rst_syn, false), CL);
        assert_eq!(
            tcp_transition(ES, Direction::Input, TcpFlags::default(), false),
            CL
        );
        assert_eq!(TcpFlags::from_byte(0x12), TcpFlags::SYN_ACK);
    }

    #[test]
    fn set_changes_three_timeouts_and_zero_keeps() {
        let mut t = StateTimeouts::default();
        t.apply_set(Timeouts {
            tcp: 100,
            tcp_fin: 0,
            udp: 5,
        });
        assert_eq!(
            t.shown(),
            Timeouts {
                tcp: 100,
                tcp_fin: 120,
                udp: 5
            }
        );
        assert_eq!(t.tcp(TcpState::TimeWait), 120);
    }
}
