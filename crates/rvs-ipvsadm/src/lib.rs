//! The ipvsadm language of rvs: the command grammar of one invocation
//! ([`cmd`]), rules files as `ipvsadm -R` reads them ([`rules`]), the
//! `ipvsadm -Sn` save format ([`save`]) and the `ipvsadm -L` listings
//! ([`list`]), with ipvsadm's list order ([`sort`]).
//!
//! Everything here is pure: text in, values out, and values in, text out.
//! Nothing reads files, resolves names or looks at the clock.
//!
//! Defaults follow ipvsadm exactly. In particular `-e` and `-E` send every
//! attribute, so an omitted one is reset: `-e` means weight 1, `-g` and no
//! thresholds unless given; `-E` means `wlc`, no persistence and a full
//! netmask unless given. `-p` without a value is 360 s.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod addr;
pub mod cmd;
pub mod list;
pub mod rules;
pub mod save;
pub mod sort;

pub use cmd::{
    ArgError, Command, DaemonConfig, ListOptions, ListTarget, MethodChoice, SyncRole, parse_args,
    with_default_method,
};
pub use list::{Counters5, ListConn, ListDest, ListFormat, ListService};
pub use rules::{RuleLine, RulesError, error_at, parse_rules};
pub use save::save;
pub mod director;
