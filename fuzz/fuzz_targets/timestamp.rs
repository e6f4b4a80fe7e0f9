//! The wire timestamp: parsing never panics; accepted text prints back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smap_identity::domain::timestamp::Timestamp;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(t) = Timestamp::parse(text) {
        assert_eq!(t.to_string(), text);
    }
});
