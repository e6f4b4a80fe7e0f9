//! The legacy e-mail message of `smtp_send_email`: never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smap_identity::adapters::legacy::LegacyEmailMessage;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = serde_json::from_slice::<LegacyEmailMessage>(data) {
        let written = serde_json::to_vec(&message).expect("serializes");
        let again: LegacyEmailMessage = serde_json::from_slice(&written).expect("parses back");
        assert_eq!(again, message);
    }
});
