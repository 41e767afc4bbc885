//! The Outlook POX Autodiscover request reader (`web::autoconfig`) under arbitrary bodies.
//!
//! Input: the request body as it arrives. Checks: no panic; an accepted address passes
//! `check_address` again unchanged (idempotent), is at most `MAX_ADDRESS` bytes and has
//! exactly one `@`; it never carries markup, so the answer built from it stays well
//! formed; and a body over `MAX_AUTODISCOVER_REQUEST` is refused as too large.
#![no_main]

use letterbox::web::autoconfig::{
    AutodiscoverError, ClientSettings, MAX_ADDRESS, MAX_AUTODISCOVER_REQUEST, autodiscover,
    check_address, parse_autodiscover_request,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_autodiscover_request(data) {
        Ok(addr) => {
            assert!(data.len() <= MAX_AUTODISCOVER_REQUEST);
            assert!(addr.len() <= MAX_ADDRESS, "{addr:?}");
            assert_eq!(addr.matches('@').count(), 1, "{addr:?}");
            assert_eq!(check_address(&addr).as_deref(), Ok(addr.as_str()));
            assert!(!addr.contains(['<', '>', '&', '"', '\'']), "{addr:?}");
            let settings = ClientSettings {
                host: "h".into(),
                domains: vec!["d".into()],
                imap: vec![],
                pop3: vec![],
                smtp: vec![],
            };
            let xml = autodiscover(&settings, Some(&addr));
            assert_eq!(xml.matches('<').count(), xml.matches('>').count());
        }
        Err(AutodiscoverError::TooLarge) => assert!(data.len() > MAX_AUTODISCOVER_REQUEST),
        Err(_) => {}
    }
});
