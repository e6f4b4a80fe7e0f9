//! The wire timestamp: parsing never panics. Incoming timestamps may have any
//! RFC 3339 offset and precision (they are normalized to UTC milliseconds);
//! what the service writes is canonical: it parses back to the same instant
//! and prints the same, and canonical input prints back as read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smap_identity::domain::timestamp::Timestamp;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(t) = Timestamp::parse(text) {
        let printed = t.to_string();
        let again = Timestamp::parse(&printed).expect("our own output parses");
        assert_eq!(again, t);
        assert_eq!(again.to_string(), printed);
        let canonical = text.len() == 24
            && text.ends_with('Z')
            && text.as_bytes().get(19) == Some(&b'.')
            && text.as_bytes()[20..23].iter().all(u8::is_ascii_digit);
        if canonical {
            assert_eq!(printed, text);
        }
    }
});
