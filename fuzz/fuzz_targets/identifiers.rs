//! Routing keys, project ids, item ids, e-mail addresses, OTP codes and
//! plan codes: parsing never panics, and accepted values print as read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smap_identity::domain::{
    email::Email,
    events::RoutingKey,
    otp::OtpCode,
    plan::PlanCode,
    progress::{ItemId, ProjectId},
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(key) = RoutingKey::parse(text) {
        assert_eq!(key.as_str(), text);
    }
    if let Ok(id) = ProjectId::parse(text) {
        assert_eq!(id.as_str(), text);
    }
    if let Ok(id) = ItemId::parse(text) {
        assert_eq!(id.as_str(), text);
    }
    if let Ok(code) = PlanCode::parse(text) {
        assert_eq!(code.as_str(), text);
    }
    let _ = OtpCode::parse(text);
    if let Ok(email) = Email::parse(text) {
        let _ = email.masked();
    }
});
