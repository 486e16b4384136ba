//! The ONVIF PullMessages (SOAP) parser and the event tracker fed by it: any bytes from a
//! camera are notifications or an error, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|xml: &str| {
    if let Ok(notifications) = hearth::onvif::parse_pull_messages(xml) {
        let mut tracker = hearth::onvif::Tracker::default();
        for (i, notification) in notifications.iter().enumerate() {
            let _ = notification.state();
            let _ = notification.signal();
            let _ = tracker.apply(notification, i as i64 * 1_000_000);
        }
    }
});
