//! The event envelope parser: never panics; what it accepts round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smap_identity::domain::events::EventEnvelope;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = EventEnvelope::from_json(data) {
        let again = EventEnvelope::from_json(&envelope.to_json()).expect("our own output parses");
        assert_eq!(again, envelope);
        let _ = envelope.data.validate(chrono_now());
    }
});

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::<chrono::Utc>::from_timestamp(1_800_000_000, 0).unwrap_or_default()
}
