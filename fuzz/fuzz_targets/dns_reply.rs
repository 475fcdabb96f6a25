//! Any datagram given to the DNS_CHECK reply check is classified without a
//! panic, and a datagram is only taken as a reply when its header carries
//! the query's ID and QR flag.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_core::dns_query::{ReplyCheck, check_reply, encode_query};

fuzz_target!(|data: &[u8]| {
    let Some((id_bytes, datagram)) = data.split_first_chunk::<2>() else {
        return;
    };
    let id = u16::from_be_bytes(*id_bytes);
    match check_reply(id, datagram) {
        ReplyCheck::Rcode(rcode) => {
            assert!(datagram.len() >= 12);
            assert_eq!(&datagram[..2], id_bytes);
            assert!(datagram[2] & 0x80 != 0);
            assert!(rcode <= 15);
        }
        ReplyCheck::NotOurs => {}
    }
    // The encoder takes any name: a query or a clear error.
    if let Ok(name) = std::str::from_utf8(datagram)
        && let Ok(q) = encode_query(id, name, 6)
    {
        assert_eq!(check_reply(id, &q), ReplyCheck::NotOurs, "a query is no reply");
    }
});
