//! PROXY protocol headers (v1 text, v2 binary), sent to a real server
//! before the client's bytes so it sees the client's address.

use std::net::SocketAddr;

use rvs_config::ProxyProtocol;

/// The v2 signature.
const SIG: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// The header for a TCP connection from `client` to `vip` (empty for
/// [`ProxyProtocol::Off`]). Mixed families (an IPv4 client on an IPv6
/// VIP) are written as IPv6 with the client mapped.
pub fn header(pp: ProxyProtocol, client: SocketAddr, vip: SocketAddr) -> Vec<u8> {
    let (client, vip) = match (client, vip) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) | (SocketAddr::V6(_), SocketAddr::V6(_)) => {
            (client, vip)
        }
        _ => (to_v6(client), to_v6(vip)),
    };
    match pp {
        ProxyProtocol::Off => Vec::new(),
        ProxyProtocol::V1 => {
            let fam = if client.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {fam} {} {} {} {}\r\n",
                client.ip(),
                vip.ip(),
                client.port(),
                vip.port()
            )
            .into_bytes()
        }
        ProxyProtocol::V2 => {
            let mut h = SIG.to_vec();
            // Version 2, PROXY command.
            h.push(0x21);
            match (client, vip) {
                (SocketAddr::V4(c), SocketAddr::V4(v)) => {
                    h.push(0x11);
                    h.extend_from_slice(&12u16.to_be_bytes());
                    h.extend_from_slice(&c.ip().octets());
                    h.extend_from_slice(&v.ip().octets());
                }
                (SocketAddr::V6(c), SocketAddr::V6(v)) => {
                    h.push(0x21);
                    h.extend_from_slice(&36u16.to_be_bytes());
                    h.extend_from_slice(&c.ip().octets());
                    h.extend_from_slice(&v.ip().octets());
                }
                _ => unreachable!("families made equal above"),
            }
            h.extend_from_slice(&client.port().to_be_bytes());
            h.extend_from_slice(&vip.port().to_be_bytes());
            h
        }
    }
}

fn to_v6(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V4(v) => SocketAddr::new(v.ip().to_ipv6_mapped().into(), v.port()),
        v6 => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2() {
        let c: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let v: SocketAddr = "203.0.113.1:80".parse().unwrap();
        assert_eq!(
            header(ProxyProtocol::V1, c, v),
            b"PROXY TCP4 192.0.2.1 203.0.113.1 5000 80\r\n"
        );
        let h = header(ProxyProtocol::V2, c, v);
        assert_eq!(&h[..12], &SIG);
        assert_eq!(&h[12..16], &[0x21, 0x11, 0, 12]);
        assert_eq!(&h[16..20], &[192, 0, 2, 1]);
        assert_eq!(&h[24..28], &[0x13, 0x88, 0, 80]);
        assert!(header(ProxyProtocol::Off, c, v).is_empty());
    }
}
