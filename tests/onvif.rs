//! ONVIF events against a PullPoint endpoint served here: a tiny device and event service on
//! loopback answering with SOAP bodies shaped as the ONVIF specification's examples. It
//! grants subscriptions of 4 s, so the hub must renew them every 2 s; it delivers a motion
//! start, a doorbell visitor, and (only after a renewal) the motion's end; it checks every
//! WS-Security digest against the configured password. The hub must record the events,
//! list the connection while subscribed, and unsubscribe when it stops.

mod hub;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use hub::{CameraSpec, Hub};
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

const USERNAME: &str = "admin";
const PASSWORD: &str = "a camera's own password";
/// What the service grants, and so how often the hub must renew.
const GRANTED_SECS: i64 = 4;
const SUBSCRIPTION_PATH: &str = "/onvif/subscription/1";

#[derive(Default)]
struct Log {
    /// Operation names, in order (`CreatePullPointSubscription`, `PullMessages`, …).
    calls: Vec<String>,
    /// What was wrong with a request (bad token, missing headers).
    problems: Vec<String>,
    nonces: HashSet<String>,
    digests_checked: usize,
    pulls: usize,
    motion_ended: bool,
    /// `UtcTime`s sent: motion start, doorbell, motion end.
    sent_times: Vec<String>,
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn in_text(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The text between `open` (the end of a start tag's name, e.g. `Username>`) and the next `<`.
fn element_text<'a>(xml: &'a str, open: &str) -> Option<&'a str> {
    let start = xml.find(open)? + open.len();
    let end = start + xml[start..].find('<')?;
    Some(&xml[start..end])
}

fn envelope(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:tds="http://www.onvif.org/ver10/device/wsdl"
 xmlns:tev="http://www.onvif.org/ver10/events/wsdl" xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2"
 xmlns:wsa5="http://www.w3.org/2005/08/addressing" xmlns:tt="http://www.onvif.org/ver10/schema"
 xmlns:tns1="http://www.onvif.org/ver10/topics"><env:Header/><env:Body>{body}</env:Body></env:Envelope>"#
    )
}

fn notification(topic: &str, time: &str, item: &str, value: &str) -> String {
    format!(
        r#"<wsnt:NotificationMessage><wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">{topic}</wsnt:Topic>
<wsnt:Message><tt:Message UtcTime="{time}" PropertyOperation="Changed"><tt:Source><tt:SimpleItem Name="VideoSourceConfigurationToken" Value="1"/></tt:Source>
<tt:Data><tt:SimpleItem Name="{item}" Value="{value}"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>"#
    )
}

fn pull_response(messages: &str) -> String {
    envelope(&format!(
        "<tev:PullMessagesResponse><tev:CurrentTime>{}</tev:CurrentTime><tev:TerminationTime>{}</tev:TerminationTime>{messages}</tev:PullMessagesResponse>",
        now_text(),
        in_text(GRANTED_SECS)
    ))
}

fn fault(subcode: &str, reason: &str) -> String {
    envelope(&format!(
        r#"<env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode><env:Value xmlns:ter="http://www.onvif.org/ver10/error">ter:{subcode}</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang="en">{reason}</env:Text></env:Reason></env:Fault>"#
    ))
}

/// Checks the UsernameToken; `None` when it is valid.
fn check_token(body: &str, log: &mut Log) -> Option<String> {
    let username = element_text(body, "Username>")?;
    if username != USERNAME {
        return Some(format!("username {username}"));
    }
    if !body.contains("#PasswordDigest\"") {
        return Some("not a password digest".into());
    }
    let digest = element_text(body, "Password Type=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest\">")?;
    let nonce_text = element_text(body, "#Base64Binary\">")?;
    let created = element_text(body, "Created>")?;
    let nonce = base64::engine::general_purpose::STANDARD.decode(nonce_text).ok()?;
    if nonce.len() != 16 {
        return Some(format!("nonce of {} bytes", nonce.len()));
    }
    let mut sha = Sha1::new();
    sha.update(&nonce);
    sha.update(created.as_bytes());
    sha.update(PASSWORD.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
    if digest != expected {
        return Some(format!("digest {digest}, expected {expected}"));
    }
    let created = chrono::DateTime::parse_from_rfc3339(created).ok()?;
    if (chrono::Utc::now() - created.with_timezone(&chrono::Utc)).num_seconds().abs() > 5 {
        return Some(format!("created {created} is not now"));
    }
    if !log.nonces.insert(nonce_text.to_owned()) {
        return Some("nonce reused".into());
    }
    log.digests_checked += 1;
    None
}

/// Answers one request: (status, body).
fn answer(path: &str, body: &str, port: u16, log: &Arc<Mutex<Log>>) -> (u16, String) {
    let operation = [
        "GetSystemDateAndTime",
        "GetServices",
        "GetCapabilities",
        "CreatePullPointSubscription",
        "PullMessages",
        "Renew",
        "Unsubscribe",
    ]
    .into_iter()
    .find(|op| body.contains(&format!(":{op}>")) || body.contains(&format!(":{op}/>")))
    .unwrap_or("unknown");
    let mut guard = log.lock().unwrap();
    guard.calls.push(operation.to_owned());
    if operation != "GetSystemDateAndTime" {
        // Everything but the clock needs a valid token.
        let problem = if body.contains("UsernameToken") {
            check_token(body, &mut guard)
        } else {
            Some("no UsernameToken".into())
        };
        let problem = problem.or_else(|| (!body.contains("<wsa:Action>")).then(|| "no wsa:Action".to_owned()));
        if let Some(problem) = problem {
            guard.problems.push(format!("{operation}: {problem}"));
            return (400, fault("NotAuthorized", "Sender not Authorized"));
        }
    }
    let base = format!("http://127.0.0.1:{port}");
    let expect_path = |wanted: &str, log: &mut Log| {
        if path != wanted {
            log.problems.push(format!("{operation} sent to {path}"));
        }
    };
    match operation {
        "GetSystemDateAndTime" => {
            let now = chrono::Utc::now();
            use chrono::{Datelike, Timelike};
            (200, envelope(&format!(
                "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>\
                 <tt:UTCDateTime><tt:Time><tt:Hour>{}</tt:Hour><tt:Minute>{}</tt:Minute><tt:Second>{}</tt:Second></tt:Time>\
                 <tt:Date><tt:Year>{}</tt:Year><tt:Month>{}</tt:Month><tt:Day>{}</tt:Day></tt:Date></tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>",
                now.hour(), now.minute(), now.second(), now.year(), now.month(), now.day()
            )))
        }
        "GetServices" => {
            expect_path("/onvif/device_service", &mut guard);
            (200, envelope(&format!(
                "<tds:GetServicesResponse>\
                 <tds:Service><tds:Namespace>http://www.onvif.org/ver10/device/wsdl</tds:Namespace><tds:XAddr>{base}/onvif/device_service</tds:XAddr><tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>\
                 <tds:Service><tds:Namespace>http://www.onvif.org/ver10/events/wsdl</tds:Namespace><tds:XAddr>{base}/onvif/Events</tds:XAddr><tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>\
                 </tds:GetServicesResponse>"
            )))
        }
        "CreatePullPointSubscription" => {
            expect_path("/onvif/Events", &mut guard);
            (200, envelope(&format!(
                "<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference><wsa5:Address>{base}{SUBSCRIPTION_PATH}</wsa5:Address>\
                 <wsa5:ReferenceParameters><dom0:SubscriptionId xmlns:dom0=\"http://www.axis.com/2009/event\">17</dom0:SubscriptionId></wsa5:ReferenceParameters>\
                 </tev:SubscriptionReference><wsnt:CurrentTime>{}</wsnt:CurrentTime><wsnt:TerminationTime>{}</wsnt:TerminationTime></tev:CreatePullPointSubscriptionResponse>",
                now_text(),
                in_text(GRANTED_SECS)
            )))
        }
        "PullMessages" | "Renew" | "Unsubscribe" => {
            expect_path(SUBSCRIPTION_PATH, &mut guard);
            if !body.contains(&format!("<wsa:To>{base}{SUBSCRIPTION_PATH}</wsa:To>")) {
                guard.problems.push(format!("{operation}: no wsa:To naming the subscription"));
            }
            if !body.contains(">17</dom0:SubscriptionId>")
                || !body.contains("xmlns:dom0=\"http://www.axis.com/2009/event\"")
            {
                guard.problems.push(format!("{operation}: reference parameter not echoed"));
            }
            match operation {
                "Renew" => (200, envelope(&format!(
                    "<wsnt:RenewResponse><wsnt:TerminationTime>{}</wsnt:TerminationTime><wsnt:CurrentTime>{}</wsnt:CurrentTime></wsnt:RenewResponse>",
                    in_text(GRANTED_SECS),
                    now_text()
                ))),
                "Unsubscribe" => (200, envelope("<wsnt:UnsubscribeResponse/>")),
                _ => {
                    guard.pulls += 1;
                    let renewed = guard.calls.iter().any(|c| c == "Renew");
                    let message = match guard.pulls {
                        1 => Some(notification("tns1:RuleEngine/CellMotionDetector/Motion", &now_text(), "IsMotion", "true")),
                        2 => Some(notification("tns1:RuleEngine/MyRuleDetector/Visitor", &now_text(), "State", "true")),
                        _ if renewed && !guard.motion_ended => {
                            guard.motion_ended = true;
                            Some(notification("tns1:RuleEngine/CellMotionDetector/Motion", &now_text(), "IsMotion", "false"))
                        }
                        _ => None,
                    };
                    match message {
                        Some(message) => {
                            let time = element_text(&message, "UtcTime=\"").map(|t| t.split('"').next().unwrap_or(t).to_owned());
                            guard.sent_times.extend(time);
                            (200, pull_response(&message))
                        }
                        None => {
                            // Nothing happened within the timeout the hub asked for.
                            let secs: u64 = element_text(body, "Timeout>")
                                .and_then(|t| t.trim_start_matches("PT").trim_end_matches('S').parse().ok())
                                .unwrap_or(1);
                            if secs as i64 >= GRANTED_SECS {
                                guard.problems.push(format!("pull timeout {secs} s outlasts the subscription"));
                            }
                            drop(guard);
                            std::thread::sleep(Duration::from_secs(secs.min(5)));
                            (200, pull_response(""))
                        }
                    }
                }
            }
        }
        _ => (400, fault("ActionNotSupported", "unknown request")),
    }
}

fn serve_connection(mut stream: TcpStream, port: u16, log: Arc<Mutex<Log>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let (head, body) = loop {
        let Ok(n) = stream.read(&mut buf) else { return };
        if n == 0 {
            return;
        }
        data.extend_from_slice(&buf[..n]);
        let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&data[..end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
            .unwrap_or(0);
        if data.len() >= end + 4 + length {
            break (head, String::from_utf8_lossy(&data[end + 4..end + 4 + length]).into_owned());
        }
    };
    let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
    if !head.to_ascii_lowercase().contains("content-type: application/soap+xml; charset=utf-8") {
        log.lock().unwrap().problems.push(format!("content type: {head}"));
    }
    let (status, reply) = answer(&path, &body, port, &log);
    let response = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/soap+xml; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        if status == 200 { "OK" } else { "Bad Request" },
        reply.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

/// The device and event service, on a thread per connection.
fn start_camera_service() -> (u16, Arc<Mutex<Log>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(Log::default()));
    let shared = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let log = shared.clone();
            std::thread::spawn(move || serve_connection(stream, port, log));
        }
    });
    (port, log)
}

fn wait_for(what: &str, hub: &mut Hub, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}\n{}", hub.log());
        assert!(hub.is_serving(), "hearth serve died\n{}", hub.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_pullpoint_doorbell_and_motion_become_events_and_the_subscription_is_renewed() {
    let (port, log) = start_camera_service();
    let extra = format!(
        "[camera.onvif]\nurl = \"http://127.0.0.1:{port}/onvif/device_service\"\nusername = \"{USERNAME}\"\npassword = \"{PASSWORD}\""
    );
    // Recording is not the point: the RTSP port refuses, the events still flow.
    let camera = CameraSpec { name: "door".into(), url: "rtsp://127.0.0.1:9/stream".into(), extra };
    let mut hub = Hub::new("", &[camera]);
    hub.start();
    let url = hub.web_url();
    let owner = hub.login(&url);

    let events = || owner.send_json("GET", "api/events?camera=door", json!(null)).1;
    let finished_motion = |events: &Value| {
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "motion" && e["source"] == "onvif" && !e["end"].is_null())
    };
    wait_for("the connection to be listed", &mut hub, Duration::from_secs(20), || {
        let (_, connections) = owner.send_json("GET", "api/connections", json!(null));
        connections["open"].as_array().is_some_and(|open| {
            open.iter()
                .any(|c| c["purpose"] == "onvif" && c["owner"] == "door" && c["remote"] == format!("127.0.0.1:{port}"))
        })
    });
    wait_for("a doorbell event and a finished motion event", &mut hub, Duration::from_secs(30), || {
        let events = events();
        let doorbell = events.as_array().unwrap().iter().any(|e| e["kind"] == "doorbell" && e["source"] == "onvif");
        doorbell && finished_motion(&events)
    });

    let events = events();
    let list = events.as_array().unwrap();
    assert_eq!(list.len(), 2, "{events:#}");
    let sent = log.lock().unwrap().sent_times.clone();
    assert_eq!(sent.len(), 3, "motion start, visitor, motion end");
    let doorbell = list.iter().find(|e| e["kind"] == "doorbell").unwrap();
    assert_eq!(doorbell["start"], sent[1], "the camera's time of the press");
    assert_eq!(doorbell["end"], sent[1], "a press has no duration");
    let motion = list.iter().find(|e| e["kind"] == "motion").unwrap();
    assert_eq!((motion["start"].as_str(), motion["end"].as_str()), (Some(sent[0].as_str()), Some(sent[2].as_str())));

    // Renewals keep coming at half the granted 4 s.
    let renewals = || log.lock().unwrap().calls.iter().filter(|c| *c == "Renew").count();
    let before = renewals();
    assert!(before >= 1);
    std::thread::sleep(Duration::from_secs(5));
    assert!(renewals() >= before + 2, "renewed every ~2 s: {:?}", log.lock().unwrap().calls);

    hub.stop();
    let log = log.lock().unwrap();
    assert_eq!(log.calls.last().map(String::as_str), Some("Unsubscribe"), "{:?}", log.calls);
    assert_eq!(
        log.calls.iter().filter(|c| *c == "CreatePullPointSubscription").count(),
        1,
        "one subscription throughout"
    );
    assert!(log.problems.is_empty(), "{:?}", log.problems);
    assert!(log.digests_checked >= 6, "every request but the clock carried a valid digest: {}", log.digests_checked);
    let served = hub.log();
    assert!(served.contains("ONVIF events subscribed"), "{served}");
}

#[test]
fn a_wrong_password_is_logged_once_and_retried_with_backoff() {
    let (port, log) = start_camera_service();
    let extra = format!(
        "[camera.onvif]\nurl = \"http://127.0.0.1:{port}/onvif/device_service\"\nusername = \"{USERNAME}\"\npassword = \"not it\""
    );
    let camera = CameraSpec { name: "door".into(), url: "rtsp://127.0.0.1:9/stream".into(), extra };
    let mut hub = Hub::new("", &[camera]);
    hub.start();
    let attempts = || log.lock().unwrap().calls.iter().filter(|c| *c == "CreatePullPointSubscription").count();
    wait_for("three subscription attempts", &mut hub, Duration::from_secs(30), || attempts() >= 3);
    hub.stop();
    let served = hub.log();
    let warnings: Vec<&str> = served.lines().filter(|l| l.contains("ONVIF events unavailable")).collect();
    assert_eq!(warnings.len(), 1, "logged once, not once per retry:\n{served}");
    assert!(warnings[0].contains("NotAuthorized"), "{}", warnings[0]);
    assert!(!served.contains(PASSWORD) && !served.contains("not it"), "no password in the log");
    assert!(log.lock().unwrap().problems.iter().all(|p| p.contains("digest")), "{:?}", log.lock().unwrap().problems);
}
