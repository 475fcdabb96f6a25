//! Any datagram given to the IPVS sync decoder gives a message or an error,
//! never a panic; the records of a decoded message encode (version 1) to a
//! message that decodes to the same records (less the HASHED flag, which
//! the encoder never sends).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_wire::sync;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = sync::decode(data) else {
        return;
    };
    if let Ok(bytes) = sync::encode_v1(msg.sync_id, &msg.conns, 65535) {
        let again = sync::decode(&bytes).expect("encoded message decodes");
        let mut want = msg.conns;
        for c in &mut want {
            c.flags &= !sync::flags::HASHED;
        }
        assert_eq!(again.conns, want);
    }
});
