//! VRRP advertisements (RFC 5798 version 3 for IPv4 and IPv6; RFC 3768
//! version 2 for IPv4, as keepalived sends by default) and the frames a new
//! master sends to move its addresses: gratuitous ARP (IPv4) and unsolicited
//! neighbour advertisement (IPv6).
//!
//! The codecs cover the VRRP message only (the IP payload). The caller
//! passes the IP source and destination because the version 3 checksum
//! covers a pseudo-header built from them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::checksum;

/// IP protocol number of VRRP.
pub const IP_PROTO: u8 = 112;
/// The IPv4 multicast group adverts go to.
pub const MCAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The IPv6 multicast group adverts go to.
pub const MCAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// The TTL / hop limit adverts are sent with; receivers drop any other.
pub const TTL: u8 = 255;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 8;
/// Length of the version 2 authentication data.
pub const V2_AUTH_LEN: usize = 8;
/// Largest Max Advertisement Interval (12 bits of centiseconds).
pub const MAX_ADVER_INT_CS: u16 = 0x0fff;
/// Priority of the address owner.
pub const PRIORITY_OWNER: u8 = 255;
/// Priority a master sends when it stops.
pub const PRIORITY_STOP: u8 = 0;
const TYPE_ADVERTISEMENT: u8 = 1;

/// Why a VRRP message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VrrpError {
    /// Shorter than the header, or than the header plus the addresses it
    /// announces (plus authentication data for version 2).
    #[error("VRRP message truncated: {len} bytes, {need} needed")]
    Truncated {
        /// Bytes received.
        len: usize,
        /// Bytes the header calls for.
        need: usize,
    },
    /// A version other than 2 or 3.
    #[error("unsupported VRRP version {0}")]
    Version(u8),
    /// A type other than 1 (advertisement).
    #[error("unsupported VRRP type {0}")]
    Type(u8),
    /// VRID 0.
    #[error("VRID 0 is not valid")]
    VridZero,
    /// Max Advertisement Interval (or v2 interval) 0.
    #[error("advertisement interval 0 is not valid")]
    IntervalZero,
    /// The checksum does not match.
    #[error("VRRP checksum mismatch: computed {computed:#06x}")]
    Checksum {
        /// The checksum the message should carry.
        computed: u16,
    },
    /// Source and destination (or an announced address) of different
    /// families, or version 2 over IPv6.
    #[error("address family mismatch")]
    Family,
    /// More addresses than one count byte can say, or than an IP payload can hold.
    #[error("too many addresses")]
    TooManyAddresses,
}

/// A version 3 advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    /// Virtual router id, 1..=255.
    pub vrid: u8,
    /// Sender's priority (255 owner, 0 stopping).
    pub priority: u8,
    /// Max Advertisement Interval in centiseconds (1..=4095).
    pub max_adver_int: u16,
    /// The virtual addresses, all of the family of the IP header.
    pub addrs: Vec<IpAddr>,
}

/// A version 2 advertisement (IPv4 only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertV2 {
    /// Virtual router id, 1..=255.
    pub vrid: u8,
    /// Sender's priority.
    pub priority: u8,
    /// Authentication type (0 none, 1 simple text, 2 IP AH).
    pub auth_type: u8,
    /// Advertisement interval in seconds.
    pub advert_int: u8,
    /// The virtual addresses.
    pub addrs: Vec<Ipv4Addr>,
    /// Authentication data (the password for type 1, zero padded).
    pub auth_data: [u8; V2_AUTH_LEN],
}

/// A decoded advertisement of either version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// Version 3.
    V3(Advert),
    /// Version 2.
    V2(AdvertV2),
}

impl Packet {
    /// The virtual router id.
    pub fn vrid(&self) -> u8 {
        match self {
            Packet::V3(a) => a.vrid,
            Packet::V2(a) => a.vrid,
        }
    }

    /// The sender's priority.
    pub fn priority(&self) -> u8 {
        match self {
            Packet::V3(a) => a.priority,
            Packet::V2(a) => a.priority,
        }
    }

    /// The advertisement interval in centiseconds.
    pub fn interval_cs(&self) -> u16 {
        match self {
            Packet::V3(a) => a.max_adver_int,
            Packet::V2(a) => u16::from(a.advert_int) * 100,
        }
    }

    /// The announced addresses.
    pub fn addrs(&self) -> Vec<IpAddr> {
        match self {
            Packet::V3(a) => a.addrs.clone(),
            Packet::V2(a) => a.addrs.iter().copied().map(IpAddr::V4).collect(),
        }
    }
}

fn addr_len(ip: IpAddr) -> usize {
    match ip {
        IpAddr::V4(_) => 4,
        IpAddr::V6(_) => 16,
    }
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

impl Advert {
    /// Bytes [`Advert::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.addrs.iter().map(|a| addr_len(*a)).sum::<usize>()
    }

    /// Appends the message to `out`, with the checksum over the
    /// pseudo-header of `src` → `dst`.
    pub fn encode(&self, src: IpAddr, dst: IpAddr, out: &mut Vec<u8>) -> Result<(), VrrpError> {
        if self.vrid == 0 {
            return Err(VrrpError::VridZero);
        }
        if self.max_adver_int == 0 {
            return Err(VrrpError::IntervalZero);
        }
        if !same_family(src, dst) || self.addrs.iter().any(|a| !same_family(*a, src)) {
            return Err(VrrpError::Family);
        }
        let count = u8::try_from(self.addrs.len()).map_err(|_| VrrpError::TooManyAddresses)?;
        let len = self.encoded_len();
        if src.is_ipv4() && len > 65_515 {
            return Err(VrrpError::TooManyAddresses);
        }
        let start = out.len();
        let int = self.max_adver_int.min(MAX_ADVER_INT_CS);
        out.extend_from_slice(&[
            0x30 | TYPE_ADVERTISEMENT,
            self.vrid,
            self.priority,
            count,
            (int >> 8) as u8,
            int as u8,
            0,
            0,
        ]);
        for a in &self.addrs {
            match a {
                IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
            }
        }
        let acc =
            checksum::pseudo_header(src, dst, IP_PROTO, len as u32).ok_or(VrrpError::Family)?;
        let c = checksum::finish(checksum::sum(acc, &out[start..]));
        out[start + 6..start + 8].copy_from_slice(&c.to_be_bytes());
        Ok(())
    }

    /// The message as owned bytes.
    pub fn to_bytes(&self, src: IpAddr, dst: IpAddr) -> Result<Vec<u8>, VrrpError> {
        let mut v = Vec::with_capacity(self.encoded_len());
        self.encode(src, dst, &mut v)?;
        Ok(v)
    }

    /// The same advertisement in version 2 form, for peers that speak only
    /// version 2 (keepalived's default `vrrp_version`): IPv4 only, and the
    /// interval must be whole seconds (1..=255). `None` otherwise.
    pub fn to_v2(&self, auth_type: u8, auth_data: [u8; V2_AUTH_LEN]) -> Option<AdvertV2> {
        if !self.max_adver_int.is_multiple_of(100) {
            return None;
        }
        let advert_int = u8::try_from(self.max_adver_int / 100).ok()?;
        let addrs = self
            .addrs
            .iter()
            .map(|a| match a {
                IpAddr::V4(a) => Some(*a),
                IpAddr::V6(_) => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some(AdvertV2 {
            vrid: self.vrid,
            priority: self.priority,
            auth_type,
            advert_int,
            addrs,
            auth_data,
        })
    }
}

impl AdvertV2 {
    /// The message as bytes (checksum over the message alone, as RFC 3768 has it).
    pub fn to_bytes(&self) -> Result<Vec<u8>, VrrpError> {
        if self.vrid == 0 {
            return Err(VrrpError::VridZero);
        }
        if self.advert_int == 0 {
            return Err(VrrpError::IntervalZero);
        }
        let count = u8::try_from(self.addrs.len()).map_err(|_| VrrpError::TooManyAddresses)?;
        let mut out = Vec::with_capacity(HEADER_LEN + 4 * self.addrs.len() + V2_AUTH_LEN);
        out.extend_from_slice(&[
            0x20 | TYPE_ADVERTISEMENT,
            self.vrid,
            self.priority,
            count,
            self.auth_type,
            self.advert_int,
            0,
            0,
        ]);
        for a in &self.addrs {
            out.extend_from_slice(&a.octets());
        }
        out.extend_from_slice(&self.auth_data);
        let c = checksum::checksum(&out);
        out[6..8].copy_from_slice(&c.to_be_bytes());
        Ok(out)
    }
}

/// Decodes a VRRP message received from `src` to `dst` (the IP header's
/// addresses). Version 3 checksums cover the pseudo-header; version 2
/// checksums do not. Bytes after the announced addresses (and version 2
/// authentication data) are allowed and covered by the checksum.
pub fn decode(bytes: &[u8], src: IpAddr, dst: IpAddr) -> Result<Packet, VrrpError> {
    if bytes.len() < HEADER_LEN {
        return Err(VrrpError::Truncated {
            len: bytes.len(),
            need: HEADER_LEN,
        });
    }
    if !same_family(src, dst) {
        return Err(VrrpError::Family);
    }
    let version = bytes[0] >> 4;
    let kind = bytes[0] & 0x0f;
    if version != 2 && version != 3 {
        return Err(VrrpError::Version(version));
    }
    if kind != TYPE_ADVERTISEMENT {
        return Err(VrrpError::Type(kind));
    }
    let vrid = bytes[1];
    if vrid == 0 {
        return Err(VrrpError::VridZero);
    }
    let priority = bytes[2];
    let count = usize::from(bytes[3]);
    let alen = if src.is_ipv4() { 4 } else { 16 };
    if version == 2 {
        if !src.is_ipv4() {
            return Err(VrrpError::Family);
        }
        let need = HEADER_LEN + 4 * count + V2_AUTH_LEN;
        if bytes.len() < need {
            return Err(VrrpError::Truncated {
                len: bytes.len(),
                need,
            });
        }
        verify(checksum::sum(0, bytes))?;
        if bytes[5] == 0 {
            return Err(VrrpError::IntervalZero);
        }
        let addrs = bytes[HEADER_LEN..HEADER_LEN + 4 * count]
            .chunks_exact(4)
            .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
            .collect();
        let mut auth_data = [0; V2_AUTH_LEN];
        auth_data.copy_from_slice(&bytes[HEADER_LEN + 4 * count..need]);
        return Ok(Packet::V2(AdvertV2 {
            vrid,
            priority,
            auth_type: bytes[4],
            advert_int: bytes[5],
            addrs,
            auth_data,
        }));
    }
    let need = HEADER_LEN + alen * count;
    if bytes.len() < need {
        return Err(VrrpError::Truncated {
            len: bytes.len(),
            need,
        });
    }
    let len = u32::try_from(bytes.len()).map_err(|_| VrrpError::TooManyAddresses)?;
    let acc = checksum::pseudo_header(src, dst, IP_PROTO, len).ok_or(VrrpError::Truncated {
        len: bytes.len(),
        need: usize::from(u16::MAX),
    })?;
    verify(checksum::sum(acc, bytes))?;
    let max_adver_int = u16::from_be_bytes([bytes[4], bytes[5]]) & MAX_ADVER_INT_CS;
    if max_adver_int == 0 {
        return Err(VrrpError::IntervalZero);
    }
    let body = &bytes[HEADER_LEN..need];
    let addrs = if alen == 4 {
        body.chunks_exact(4)
            .map(|c| IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3])))
            .collect()
    } else {
        body.chunks_exact(16)
            .map(|c| {
                let mut o = [0; 16];
                o.copy_from_slice(c);
                IpAddr::V6(Ipv6Addr::from(o))
            })
            .collect()
    };
    Ok(Packet::V3(Advert {
        vrid,
        priority,
        max_adver_int,
        addrs,
    }))
}

fn verify(acc: u32) -> Result<(), VrrpError> {
    // A correct message sums (checksum field included) to 0xffff.
    let folded = checksum::finish(acc);
    if folded == 0 {
        Ok(())
    } else {
        Err(VrrpError::Checksum { computed: folded })
    }
}

/// Version 2 authentication type: none.
pub const AUTH_NONE: u8 = 0;
/// Version 2 authentication type: simple text password (RFC 2338 §5.3.6.1).
pub const AUTH_PASS: u8 = 1;
/// Version 2 authentication type: IPsec AH (RFC 2338; removed by RFC 3768).
pub const AUTH_AH: u8 = 2;

/// The authentication data of a simple text password: its bytes, zero
/// padded to 8, as keepalived sends them. `None` when `pass` is empty or
/// longer than 8 bytes.
pub fn auth_pass_data(pass: &[u8]) -> Option<[u8; V2_AUTH_LEN]> {
    if pass.is_empty() || pass.len() > V2_AUTH_LEN {
        return None;
    }
    let mut d = [0; V2_AUTH_LEN];
    d[..pass.len()].copy_from_slice(pass);
    Some(d)
}

/// Why an advert failed the version 2 authentication check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The advert's authentication type is not the configured one (a
    /// version 3 advert counts as type 0: it has no authentication).
    #[error("authentication type {got} where {want} is configured")]
    Type {
        /// Received type.
        got: u8,
        /// Configured type.
        want: u8,
    },
    /// The password differs.
    #[error("authentication password mismatch")]
    Password,
}

/// keepalived's receive check: with `pass` (from [`auth_pass_data`]) an
/// advert must be version 2, type [`AUTH_PASS`], with the same 8 bytes;
/// without, a version 2 advert must carry type [`AUTH_NONE`].
pub fn check_auth(pkt: &Packet, pass: Option<&[u8; V2_AUTH_LEN]>) -> Result<(), AuthError> {
    let (got, data) = match pkt {
        Packet::V2(a) => (a.auth_type, Some(&a.auth_data)),
        Packet::V3(_) => (AUTH_NONE, None),
    };
    let want = if pass.is_some() { AUTH_PASS } else { AUTH_NONE };
    if got != want {
        return Err(AuthError::Type { got, want });
    }
    match (pass, data) {
        (Some(p), Some(d)) if p != d => Err(AuthError::Password),
        _ => Ok(()),
    }
}

/// The virtual MAC address of a virtual router (`00-00-5E-00-01-{VRID}` for
/// IPv4, `00-00-5E-00-02-{VRID}` for IPv6).
pub fn virtual_mac(ipv6: bool, vrid: u8) -> [u8; 6] {
    [0x00, 0x00, 0x5e, 0x00, if ipv6 { 2 } else { 1 }, vrid]
}

/// Length of a gratuitous ARP frame (unpadded).
pub const GARP_FRAME_LEN: usize = 42;
/// Length of an unsolicited neighbour advertisement frame.
pub const NA_FRAME_LEN: usize = 86;

/// A gratuitous ARP request announcing `ip` at `mac`, as an Ethernet frame
/// to the broadcast address (target hardware address broadcast too, as
/// keepalived sends it). Not padded to 60 bytes: the NIC pads.
pub fn gratuitous_arp(mac: [u8; 6], ip: Ipv4Addr) -> [u8; GARP_FRAME_LEN] {
    let mut f = [0u8; GARP_FRAME_LEN];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    // Ethernet, IPv4, 6-byte and 4-byte addresses, request.
    f[14..22].copy_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip.octets());
    f[32..38].copy_from_slice(&[0xff; 6]);
    f[38..42].copy_from_slice(&ip.octets());
    f
}

/// An unsolicited neighbour advertisement (RFC 4861 §7.2.6) for `target`
/// at `mac`, from `src` (the interface's link-local address) to all nodes
/// (ff02::1), hop limit 255, Override set, Router as given (RFC 5798 §6.4.2
/// sets it for a virtual router), with the target link-layer address option.
pub fn unsolicited_na(
    mac: [u8; 6],
    src: Ipv6Addr,
    target: Ipv6Addr,
    router: bool,
) -> [u8; NA_FRAME_LEN] {
    const ICMP_LEN: usize = 32;
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let mut f = [0u8; NA_FRAME_LEN];
    f[0..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    let ip = &mut f[14..54];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&(ICMP_LEN as u16).to_be_bytes());
    ip[6] = 58;
    ip[7] = 255;
    ip[8..24].copy_from_slice(&src.octets());
    ip[24..40].copy_from_slice(&all_nodes.octets());
    let icmp = &mut f[54..86];
    icmp[0] = 136;
    icmp[4] = if router { 0xa0 } else { 0x20 };
    icmp[8..24].copy_from_slice(&target.octets());
    icmp[24] = 2;
    icmp[25] = 1;
    icmp[26..32].copy_from_slice(&mac);
    let acc = checksum::pseudo_header(IpAddr::V6(src), IpAddr::V6(all_nodes), 58, ICMP_LEN as u32)
        .unwrap_or(0);
    let c = checksum::finish(checksum::sum(acc, icmp));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    f
}

#[cfg(test)]
mod tests;
