//! ONVIF events: motion and doorbell presses reported by the camera itself.
//!
//! For a camera with `[camera.onvif]`, [`run`] keeps a PullPoint subscription on the camera's
//! event service: it asks the device service where that is (`GetServices`, else
//! `GetCapabilities`, else `/onvif/event_service`), creates the subscription
//! (`CreatePullPointSubscription`), pulls notifications (`PullMessages`), renews it at half the
//! lifetime the camera granted (`Renew`), and unsubscribes when hearth stops. Requests are
//! SOAP 1.2 over a small HTTP/1.1 client of our own (plain, or TLS verified against the
//! system's roots), authenticated with a WS-Security UsernameToken (password digest, so the
//! password never crosses the wire). The camera's clock is read once per subscription
//! (`GetSystemDateAndTime`) so the token's timestamp and the events' times agree with it.
//!
//! Notifications are parsed by [`parse_pull_messages`], a pure function that matches local
//! names only (vendors use every namespace prefix imaginable) and never panics on what a
//! camera sends. [`Tracker`] turns them into hearth events: motion (any active motion source
//! of the camera makes one lasting `motion` event) and doorbell/visitor presses (one
//! `doorbell` instant each), both with source `onvif`. Failures end the subscription and are
//! retried with backoff (1 s doubling to 30 s, ±20 % jitter), logged once per change; the
//! connection is listed on the connections page while subscribed.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use quick_xml::events::Event as XmlEvent;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::{redacted_url, OnvifConfig};
use crate::events::Events;
use crate::shutdown::Shutdown;

const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// What we ask for; the camera may grant something else, and we renew at half of that.
const TERMINATION: &str = "PT60S";
const DEFAULT_RENEW: Duration = Duration::from_secs(30);
const PULL_TIMEOUT_SECS: u64 = 5;
const MESSAGE_LIMIT: u32 = 32;
/// Beyond a pull's own timeout: how long a camera may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
const UNSUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_RESPONSE: usize = 1 << 20;
const MAX_DEPTH: usize = 64;
/// A doorbell that repeats "true" without a "false" in between is one press for this long.
const DOORBELL_REPEAT_US: i64 = 3_000_000;
/// Event times further than this from the hub's clock (after correcting for the camera's
/// clock) are not believed: the hub's own time is used instead.
const MAX_SKEW_US: i64 = 300_000_000;

const EVENTS_NAMESPACE: &str = "http://www.onvif.org/ver10/events/wsdl";

#[derive(Debug, thiserror::Error)]
pub enum OnvifError {
    #[error("not well-formed XML: {0}")]
    Xml(String),
    #[error("XML nested deeper than {MAX_DEPTH} elements")]
    TooDeep,
    #[error("not a SOAP envelope")]
    NotSoap,
    #[error("SOAP fault {code}: {reason}")]
    Fault { code: String, reason: String },
    #[error("unexpected answer (no {0})")]
    Unexpected(&'static str),
    #[error("cannot connect to {0}")]
    Connect(String),
    #[error("connection: {0}")]
    Io(String),
    #[error("no answer within {0} s")]
    Timeout(u64),
    #[error("bad HTTP response: {0}")]
    Http(String),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("the camera wants HTTP authentication (hearth sends a WS-Security UsernameToken): check the ONVIF username and password")]
    Unauthorized,
    #[error("answer larger than {} KiB", MAX_RESPONSE / 1024)]
    TooLarge,
    #[error("TLS: {0}")]
    Tls(String),
    #[error("bad address: {0}")]
    BadUrl(String),
}

// ---------------------------------------------------------------------------------------------
// XML: a small tree of what a SOAP answer holds.

/// One XML element. Names are kept as written (`tt:Message`); lookups compare local names.
#[derive(Debug, Default)]
struct Element {
    qname: String,
    /// Attributes with their names as written, namespace declarations included.
    attrs: Vec<(String, String)>,
    text: String,
    children: Vec<Element>,
    /// Byte range of the whole element in the document it came from.
    span: (usize, usize),
}

fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

fn is_namespace_declaration(key: &str) -> bool {
    key == "xmlns" || key.starts_with("xmlns:")
}

impl Element {
    fn name(&self) -> &str {
        local(&self.qname)
    }

    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| !is_namespace_declaration(k) && local(k) == name).map(|(_, v)| v.as_str())
    }

    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name() == name)
    }

    fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name() == name)
    }

    /// This element or the first descendant (depth first) named `name`.
    fn find(&self, name: &str) -> Option<&Element> {
        self.path_to(name).and_then(|path| path.last().copied())
    }

    /// The elements from this one down to the first one named `name`.
    fn path_to(&self, name: &str) -> Option<Vec<&Element>> {
        if self.name() == name {
            return Some(vec![self]);
        }
        self.children.iter().find_map(|c| {
            let mut path = c.path_to(name)?;
            path.insert(0, self);
            Some(path)
        })
    }

    fn text(&self) -> &str {
        self.text.trim()
    }
}

/// Parses a whole document into its root element.
fn parse_xml(xml: &str) -> Result<Element, OnvifError> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let bad = |e: &dyn std::fmt::Display| OnvifError::Xml(e.to_string());
    loop {
        let before = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| bad(&e))?;
        let after = reader.buffer_position() as usize;
        match event {
            XmlEvent::Start(ref start) | XmlEvent::Empty(ref start) => {
                if root.is_some() {
                    return Err(OnvifError::Xml("content after the root element".into()));
                }
                let mut attrs = Vec::new();
                for attr in start.attributes() {
                    let attr = attr.map_err(|e| bad(&e))?;
                    let value = attr.normalized_value(quick_xml::XmlVersion::Implicit1_0).map_err(|e| bad(&e))?;
                    attrs.push((attr.key.as_ref().to_owned(), value.into_owned()));
                }
                // The reader may already have consumed the `<`.
                let begin = if xml.as_bytes().get(before) == Some(&b'<') { before } else { before.saturating_sub(1) };
                let element = Element {
                    qname: start.name().as_ref().to_owned(),
                    attrs,
                    span: (begin, after),
                    ..Element::default()
                };
                if matches!(event, XmlEvent::Empty(_)) {
                    attach(&mut stack, &mut root, element);
                } else {
                    if stack.len() >= MAX_DEPTH {
                        return Err(OnvifError::TooDeep);
                    }
                    stack.push(element);
                }
            }
            XmlEvent::End(_) => {
                let mut element = stack.pop().ok_or_else(|| OnvifError::Xml("unmatched end tag".into()))?;
                element.span.1 = after;
                attach(&mut stack, &mut root, element);
            }
            XmlEvent::Text(text) => add_text(&mut stack, &text.xml10_content())?,
            XmlEvent::CData(text) => add_text(&mut stack, &text.xml10_content())?,
            XmlEvent::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref().map_err(|e| bad(&e))? {
                    Some(c) => c.to_string(),
                    None => quick_xml::escape::resolve_xml_entity(&reference)
                        .ok_or_else(|| OnvifError::Xml(format!("unknown entity &{};", &*reference)))?
                        .to_owned(),
                };
                add_text(&mut stack, &resolved)?;
            }
            XmlEvent::Eof => break,
            XmlEvent::Decl(_) | XmlEvent::PI(_) | XmlEvent::Comment(_) | XmlEvent::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(OnvifError::Xml("document ends inside an element".into()));
    }
    root.ok_or_else(|| OnvifError::Xml("no root element".into()))
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}

fn add_text(stack: &mut [Element], text: &str) -> Result<(), OnvifError> {
    match stack.last_mut() {
        Some(element) => element.text.push_str(text),
        None if text.trim().is_empty() => {}
        None => return Err(OnvifError::Xml("text outside the root element".into())),
    }
    Ok(())
}

/// The SOAP body of `root`, or the fault it carries.
fn soap_body(root: &Element) -> Result<&Element, OnvifError> {
    if root.name() != "Envelope" {
        return Err(OnvifError::NotSoap);
    }
    let body = root.child("Body").ok_or(OnvifError::NotSoap)?;
    match body.child("Fault") {
        Some(fault) => Err(fault_error(fault)),
        None => Ok(body),
    }
}

fn fault_error(fault: &Element) -> OnvifError {
    // SOAP 1.2: Code/Value with nested Subcode/Value (the innermost is the most precise) and
    // Reason/Text; SOAP 1.1: faultcode and faultstring.
    let mut code = fault.child("faultcode").map(Element::text);
    let mut level = fault.child("Code");
    while let Some(c) = level {
        if let Some(value) = c.child("Value") {
            code = Some(value.text());
        }
        level = c.child("Subcode");
    }
    let reason = fault
        .child("Reason")
        .and_then(|r| r.child("Text"))
        .or_else(|| fault.child("faultstring"))
        .map(Element::text)
        .unwrap_or("");
    let clip = |s: &str| s.chars().take(200).collect::<String>();
    OnvifError::Fault { code: clip(local(code.unwrap_or("unknown"))), reason: clip(reason) }
}

// ---------------------------------------------------------------------------------------------
// Notifications.

/// One `wsnt:NotificationMessage`.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// The topic without namespace prefixes, e.g. `RuleEngine/CellMotionDetector/Motion`.
    pub topic: String,
    /// The message's `UtcTime` (the camera's clock), µs since the epoch.
    pub utc_time_us: Option<i64>,
    /// `Initialized`, `Changed` or `Deleted`.
    pub operation: Option<String>,
    /// `Source` SimpleItems (which video source, rule, input), name and value.
    pub source: Vec<(String, String)>,
    /// `Data` SimpleItems (`IsMotion`, `State`, …), name and value.
    pub data: Vec<(String, String)>,
}

/// What a notification says, as far as hearth cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Motion(bool),
    Doorbell(bool),
}

/// Data items that carry the state, most specific first.
const STATE_ITEMS: &[&str] =
    &["ismotion", "state", "value", "logicalstate", "active", "motion", "isvisitor", "iscall", "isdoorbell"];

fn truthy(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" | "active" | "ringing" => Some(true),
        "false" | "0" | "off" | "no" | "inactive" | "idle" => Some(false),
        _ => None,
    }
}

impl Notification {
    /// The on/off state this notification reports, if it reports one.
    pub fn state(&self) -> Option<bool> {
        for wanted in STATE_ITEMS {
            if let Some(state) =
                self.data.iter().find(|(name, _)| name.eq_ignore_ascii_case(wanted)).and_then(|(_, v)| truthy(v))
            {
                return Some(state);
            }
        }
        match self.data.as_slice() {
            [(_, value)] => truthy(value),
            _ => None,
        }
    }

    /// Motion (`…/CellMotionDetector/Motion`, `VideoSource/MotionAlarm`, Axis `VMD…`) or a
    /// doorbell (`…/Visitor`, anything naming a doorbell or a call); `None` for anything else.
    pub fn signal(&self) -> Option<Signal> {
        let topic = self.topic.to_ascii_lowercase();
        let segments: Vec<&str> = topic.split('/').collect();
        let state = self.state()?;
        if segments.iter().any(|s| s.contains("doorbell") || s.contains("visitor") || s.starts_with("call")) {
            return Some(Signal::Doorbell(state));
        }
        let last = segments.last().copied().unwrap_or_default();
        if last.contains("motion") || segments.iter().any(|s| s.starts_with("vmd")) {
            return Some(Signal::Motion(state));
        }
        None
    }
}

/// `tns1:RuleEngine/tnsaxis:VMD3/vmd3_video_1` → `RuleEngine/VMD3/vmd3_video_1`.
fn normalize_topic(text: &str) -> String {
    let first = text.split('|').next().unwrap_or_default();
    first.trim().split('/').map(|segment| local(segment.trim())).collect::<Vec<_>>().join("/")
}

/// `xs:dateTime` as cameras write it: RFC 3339, or without a zone (meaning UTC).
fn parse_onvif_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Some(us) = crate::time::parse_rfc3339(text) {
        return Some(us);
    }
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    Some(naive.and_utc().timestamp_micros())
}

fn simple_items(parent: Option<&Element>) -> Vec<(String, String)> {
    let Some(parent) = parent else { return Vec::new() };
    parent
        .children("SimpleItem")
        .filter_map(|item| Some((item.attr("Name")?.to_owned(), item.attr("Value").unwrap_or_default().to_owned())))
        .collect()
}

fn notification(message: &Element) -> Notification {
    let topic = message.child("Topic").map(|t| normalize_topic(t.text())).unwrap_or_default();
    // wsnt:Message holds a tt:Message; tolerate the attributes on the outer one too.
    let outer = message.child("Message");
    let inner = outer.and_then(|m| m.child("Message")).or(outer);
    Notification {
        topic,
        utc_time_us: inner.and_then(|m| m.attr("UtcTime")).and_then(parse_onvif_time),
        operation: inner.and_then(|m| m.attr("PropertyOperation")).map(str::to_owned),
        source: simple_items(inner.and_then(|m| m.child("Source"))),
        data: simple_items(inner.and_then(|m| m.child("Data"))),
    }
}

/// The notifications in a `PullMessagesResponse`. A SOAP fault, or anything that is not a
/// `PullMessagesResponse`, is an error.
pub fn parse_pull_messages(xml: &str) -> Result<Vec<Notification>, OnvifError> {
    let root = parse_xml(xml)?;
    let body = soap_body(&root)?;
    let response = body.child("PullMessagesResponse").ok_or(OnvifError::Unexpected("PullMessagesResponse"))?;
    Ok(response.children("NotificationMessage").map(notification).collect())
}

// ---------------------------------------------------------------------------------------------
// From notifications to events.

/// What to do with the events store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    MotionStart(i64),
    MotionEnd(i64),
    Doorbell(i64),
}

/// A camera's event state: which of its motion sources are active (one hearth motion event
/// lasts while any is) and when each doorbell source last rang.
#[derive(Debug, Default)]
pub struct Tracker {
    active: BTreeSet<String>,
    open: bool,
    rang: BTreeMap<String, i64>,
}

impl Tracker {
    /// The action `notification`, happening at `time_us`, calls for.
    pub fn apply(&mut self, notification: &Notification, time_us: i64) -> Option<Action> {
        let key = format!("{}|{:?}", notification.topic, notification.source);
        let initialized = notification.operation.as_deref() == Some("Initialized");
        match notification.signal()? {
            Signal::Motion(true) => {
                self.active.insert(key);
                (!std::mem::replace(&mut self.open, true)).then_some(Action::MotionStart(time_us))
            }
            Signal::Motion(false) => {
                self.active.remove(&key);
                if self.open && self.active.is_empty() {
                    self.open = false;
                    Some(Action::MotionEnd(time_us))
                } else {
                    None
                }
            }
            // The state at subscription time, not a press.
            Signal::Doorbell(true) if initialized => None,
            Signal::Doorbell(true) => match self.rang.insert(key, time_us) {
                Some(last) if time_us.saturating_sub(last).saturating_abs() < DOORBELL_REPEAT_US => None,
                _ => Some(Action::Doorbell(time_us)),
            },
            Signal::Doorbell(false) => {
                self.rang.remove(&key);
                None
            }
        }
    }
}

/// The hub-clock time of a message stamped `camera_time` by a camera whose clock is
/// `camera_ahead_us` ahead of ours; `now_us` when there is no stamp or it is not believable.
fn event_time(camera_time: Option<i64>, camera_ahead_us: i64, now_us: i64) -> i64 {
    match camera_time.map(|t| t.saturating_sub(camera_ahead_us)) {
        Some(t) if t.saturating_sub(now_us).saturating_abs() <= MAX_SKEW_US => t,
        _ => now_us,
    }
}

// ---------------------------------------------------------------------------------------------
// SOAP requests.

/// WS-Security's PasswordDigest: Base64(SHA-1(nonce + created + password)).
pub fn password_digest(nonce: &[u8], created: &str, password: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(nonce);
    sha.update(created.as_bytes());
    sha.update(password.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

/// A UsernameToken header stamped with the camera's time `camera_now_us`.
fn security_header(username: &str, password: &str, camera_now_us: i64) -> String {
    let nonce: [u8; 16] = rand::random();
    let created = chrono::DateTime::from_timestamp_micros(camera_now_us)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let digest = password_digest(&nonce, &created, password);
    let nonce = base64::engine::general_purpose::STANDARD.encode(nonce);
    format!(
        concat!(
            r#"<wsse:Security s:mustUnderstand="1" xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" "#,
            r#"xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">"#,
            "<wsse:UsernameToken><wsse:Username>{}</wsse:Username>",
            r#"<wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">{}</wsse:Password>"#,
            r#"<wsse:Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">{}</wsse:Nonce>"#,
            "<wsu:Created>{}</wsu:Created></wsse:UsernameToken></wsse:Security>"
        ),
        escape(username),
        digest,
        nonce,
        created
    )
}

fn envelope(header: &str, body: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://www.w3.org/2005/08/addressing" "#,
            r#"xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:tev="http://www.onvif.org/ver10/events/wsdl" "#,
            r#"xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" xmlns:tt="http://www.onvif.org/ver10/schema">"#,
            "<s:Header>{}</s:Header><s:Body>{}</s:Body></s:Envelope>"
        ),
        header, body
    )
}

/// Where requests go: a service address, and for a subscription the reference parameters the
/// camera wants echoed back as headers (WS-Addressing; Axis uses them).
#[derive(Clone, Debug)]
struct Endpoint {
    url: url::Url,
    reference_parameters: Vec<String>,
}

/// A service or subscription address `text` as the camera reported it; the configured
/// device's host replaces another host, so hearth connects only where it was told to.
fn endpoint_url(device: &url::Url, text: &str) -> Option<url::Url> {
    let reported = url::Url::parse(text.trim()).ok()?;
    if !matches!(reported.scheme(), "http" | "https") {
        return None;
    }
    if reported.host_str() == device.host_str() {
        return Some(reported);
    }
    let mut url = device.clone();
    url.set_path(reported.path());
    url.set_query(reported.query());
    Some(url)
}

/// The children of `path`'s last element (`ReferenceParameters`) as XML, each carrying the
/// namespace declarations in scope and marked as a reference parameter.
fn reference_parameters(xml: &str, path: &[&Element]) -> Vec<String> {
    let Some(parameters) = path.last() else { return Vec::new() };
    let mut scope: BTreeMap<&str, &str> = BTreeMap::new();
    for element in path {
        for (key, value) in &element.attrs {
            if is_namespace_declaration(key) {
                scope.insert(key, value);
            }
        }
    }
    parameters
        .children
        .iter()
        .filter_map(|child| {
            let raw = xml.get(child.span.0..child.span.1)?;
            let at = 1 + child.qname.len();
            if !raw.starts_with('<') || raw.get(1..at) != Some(child.qname.as_str()) {
                return None;
            }
            let mut declarations = String::new();
            for (key, value) in &scope {
                if !child.attrs.iter().any(|(k, _)| k == key) {
                    declarations.push_str(&format!(" {key}=\"{}\"", escape(value)));
                }
            }
            if !child.attrs.iter().any(|(k, _)| local(k) == "IsReferenceParameter") {
                declarations.push_str(r#" wsa:IsReferenceParameter="true""#);
            }
            Some(format!("{}{declarations}{}", &raw[..at], &raw[at..]))
        })
        .collect()
}

/// What a subscription needs: where it is, and how often to renew it.
#[derive(Debug)]
struct Subscription {
    endpoint: Endpoint,
    renew_every: Duration,
}

/// Half of the lifetime granted by `response` (`CurrentTime`/`TerminationTime`).
fn renew_interval(response: &Element, camera_now_us: i64) -> Duration {
    let time = |name| response.find(name).and_then(|e| parse_onvif_time(e.text()));
    let Some(termination) = time("TerminationTime") else { return DEFAULT_RENEW };
    let current = time("CurrentTime").unwrap_or(camera_now_us);
    let granted = termination.saturating_sub(current);
    if granted <= 0 {
        return DEFAULT_RENEW;
    }
    Duration::from_micros(granted as u64 / 2).clamp(Duration::from_secs(1), Duration::from_secs(300))
}

fn parse_subscription(xml: &str, device: &url::Url, camera_now_us: i64) -> Result<Subscription, OnvifError> {
    let root = parse_xml(xml)?;
    let body = soap_body(&root)?;
    let response = body
        .child("CreatePullPointSubscriptionResponse")
        .ok_or(OnvifError::Unexpected("CreatePullPointSubscriptionResponse"))?;
    let mut path = vec![&root, body];
    path.extend(response.path_to("SubscriptionReference").ok_or(OnvifError::Unexpected("SubscriptionReference"))?);
    let reference = *path.last().expect("path_to returns at least one element");
    let address = reference.child("Address").ok_or(OnvifError::Unexpected("SubscriptionReference/Address"))?;
    let url =
        endpoint_url(device, address.text()).ok_or(OnvifError::BadUrl(address.text().chars().take(200).collect()))?;
    let reference_parameters = match reference.child("ReferenceParameters") {
        Some(parameters) => {
            path.push(parameters);
            reference_parameters(xml, &path)
        }
        None => Vec::new(),
    };
    Ok(Subscription {
        endpoint: Endpoint { url, reference_parameters },
        renew_every: renew_interval(response, camera_now_us),
    })
}

/// The events service's address from a `GetServicesResponse` or `GetCapabilitiesResponse`.
fn parse_events_address(xml: &str, device: &url::Url) -> Option<url::Url> {
    let root = parse_xml(xml).ok()?;
    let body = soap_body(&root).ok()?;
    if let Some(services) = body.child("GetServicesResponse") {
        let service = services
            .children("Service")
            .find(|s| s.child("Namespace").is_some_and(|n| n.text() == EVENTS_NAMESPACE))?;
        return endpoint_url(device, service.child("XAddr")?.text());
    }
    let capabilities = body.child("GetCapabilitiesResponse")?.find("Capabilities")?;
    endpoint_url(device, capabilities.child("Events")?.child("XAddr")?.text())
}

/// The camera's UTC clock from a `GetSystemDateAndTimeResponse`, µs since the epoch.
fn parse_camera_time(xml: &str) -> Option<i64> {
    let root = parse_xml(xml).ok()?;
    let utc = soap_body(&root).ok()?.child("GetSystemDateAndTimeResponse")?.find("UTCDateTime")?;
    let number = |parent: &str, name: &str| -> Option<u32> { utc.child(parent)?.child(name)?.text().parse().ok() };
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(number("Date", "Year")?).ok()?,
        number("Date", "Month")?,
        number("Date", "Day")?,
    )?;
    let time = date.and_hms_opt(number("Time", "Hour")?, number("Time", "Minute")?, number("Time", "Second")?)?;
    Some(time.and_utc().timestamp_micros())
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1, one request per connection.

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            crate::web::tls::install_crypto_provider();
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            Arc::new(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
        })
        .clone()
}

async fn connect(url: &url::Url) -> Result<(Box<dyn Stream>, SocketAddr), OnvifError> {
    let host = url.host_str().ok_or_else(|| OnvifError::BadUrl("no host".into()))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(80);
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| OnvifError::Connect(format!("{host}:{port}: {e}")))?;
    let remote = tcp.peer_addr().map_err(|e| OnvifError::Io(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    match url.scheme() {
        "http" => Ok((Box::new(tcp), remote)),
        "https" => {
            let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                .map_err(|e| OnvifError::Tls(format!("{host}: {e}")))?;
            let tls = tokio_rustls::TlsConnector::from(tls_config())
                .connect(name, tcp)
                .await
                .map_err(|e| OnvifError::Tls(e.to_string()))?;
            Ok((Box::new(tls), remote))
        }
        other => Err(OnvifError::BadUrl(format!("{other}:// is not http or https"))),
    }
}

/// A chunked body, once complete (`None`: more bytes needed).
fn decode_chunked(mut data: &[u8]) -> Result<Option<Vec<u8>>, OnvifError> {
    let bad = || OnvifError::Http("bad chunked encoding".into());
    let mut out = Vec::new();
    loop {
        let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
        let line = std::str::from_utf8(&data[..line_end]).map_err(|_| bad())?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| bad())?;
        if size > MAX_RESPONSE {
            return Err(OnvifError::TooLarge);
        }
        if size == 0 {
            return Ok(Some(out));
        }
        let start = line_end + 2;
        let end = start + size;
        if data.len() < end + 2 {
            return Ok(None);
        }
        if &data[end..end + 2] != b"\r\n" {
            return Err(bad());
        }
        out.extend_from_slice(&data[start..end]);
        data = &data[end + 2..];
    }
}

/// Status and body of the response in `data`, once complete (`None`: more bytes needed;
/// `eof`: there will be no more).
fn parse_response(mut data: &[u8], eof: bool) -> Result<Option<(u16, Vec<u8>)>, OnvifError> {
    let incomplete =
        |what: &str| if eof { Err(OnvifError::Http(format!("connection closed {what}"))) } else { Ok(None) };
    loop {
        let Some(head_end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            return incomplete("before the headers ended");
        };
        let head = std::str::from_utf8(&data[..head_end]).map_err(|_| OnvifError::Http("headers not UTF-8".into()))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = match status_line.split(' ').collect::<Vec<_>>().as_slice() {
            [version, code, ..] if version.starts_with("HTTP/1.") => {
                code.parse().map_err(|_| OnvifError::Http(format!("bad status line {status_line:.60}")))?
            }
            _ => return Err(OnvifError::Http(format!("bad status line {status_line:.60}"))),
        };
        let body = &data[head_end + 4..];
        if (100..200).contains(&status) {
            data = body; // 100 Continue and friends: the real answer follows
            continue;
        }
        let header = |name: &str| {
            head.split("\r\n").skip(1).find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
            })
        };
        if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            return match decode_chunked(body)? {
                Some(body) => Ok(Some((status, body))),
                None => incomplete("inside a chunked body"),
            };
        }
        if let Some(length) = header("content-length") {
            let length: usize = length.parse().map_err(|_| OnvifError::Http("bad Content-Length".into()))?;
            if length > MAX_RESPONSE {
                return Err(OnvifError::TooLarge);
            }
            return if body.len() >= length {
                Ok(Some((status, body[..length].to_vec())))
            } else {
                incomplete("early")
            };
        }
        return if eof { Ok(Some((status, body.to_vec()))) } else { Ok(None) };
    }
}

async fn read_response(stream: &mut (impl AsyncRead + Unpin + ?Sized)) -> Result<(u16, Vec<u8>), OnvifError> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(done) = parse_response(&data, false)? {
            return Ok(done);
        }
        let n = match stream.read(&mut chunk).await {
            Ok(n) => n,
            // A TLS peer closing without close_notify: the end, as far as we care.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(OnvifError::Io(e.to_string())),
        };
        if n == 0 {
            return parse_response(&data, true)?.ok_or_else(|| OnvifError::Http("empty answer".into()));
        }
        data.extend_from_slice(&chunk[..n]);
        if data.len() > MAX_RESPONSE + 64 * 1024 {
            return Err(OnvifError::TooLarge);
        }
    }
}

/// POSTs `envelope` to `url`; returns the answer's XML (faults become errors) and who answered.
async fn post(
    url: &url::Url,
    action: &str,
    envelope: &str,
    timeout: Duration,
) -> Result<(String, SocketAddr), OnvifError> {
    let exchange = async {
        let (mut stream, remote) = connect(url).await?;
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/soap+xml; charset=utf-8; action=\"{action}\"\r\n\
             Content-Length: {}\r\nConnection: close\r\nUser-Agent: hearth\r\n\r\n{envelope}",
            envelope.len()
        );
        stream.write_all(request.as_bytes()).await.map_err(|e| OnvifError::Io(e.to_string()))?;
        stream.flush().await.map_err(|e| OnvifError::Io(e.to_string()))?;
        let response = read_response(&mut stream).await?;
        Ok::<_, OnvifError>((response, remote))
    };
    let ((status, body), remote) =
        tokio::time::timeout(timeout, exchange).await.map_err(|_| OnvifError::Timeout(timeout.as_secs()))??;
    let text = String::from_utf8_lossy(&body).into_owned();
    if !(200..300).contains(&status) {
        // Cameras answer faults with 400 or 500; those say more than the status.
        if let Some(Err(fault @ OnvifError::Fault { .. })) = parse_xml(&text).ok().as_ref().map(soap_body) {
            return Err(fault);
        }
        return Err(if status == 401 { OnvifError::Unauthorized } else { OnvifError::Status(status) });
    }
    Ok((text, remote))
}

// ---------------------------------------------------------------------------------------------
// The subscription loop.

/// One camera's subscriber.
struct Client {
    camera: String,
    config: OnvifConfig,
    /// How far the camera's clock is ahead of ours.
    camera_ahead_us: i64,
}

impl Client {
    fn camera_now(&self) -> i64 {
        crate::time::now_us().saturating_add(self.camera_ahead_us)
    }

    fn security(&self) -> String {
        match (&self.config.username, &self.config.password) {
            (Some(user), Some(password)) => security_header(user, password, self.camera_now()),
            (Some(user), None) => security_header(user, "", self.camera_now()),
            _ => String::new(),
        }
    }

    async fn call(
        &self,
        endpoint: &Endpoint,
        action: &str,
        body: &str,
        timeout: Duration,
    ) -> Result<(String, SocketAddr), OnvifError> {
        let mut header = self.security();
        header.push_str(&format!(
            "<wsa:Action>{}</wsa:Action><wsa:To>{}</wsa:To>",
            escape(action),
            escape(endpoint.url.as_str())
        ));
        for parameter in &endpoint.reference_parameters {
            header.push_str(parameter);
        }
        post(&endpoint.url, action, &envelope(&header, body), timeout).await
    }

    fn device(&self) -> Endpoint {
        Endpoint { url: self.config.url.clone(), reference_parameters: Vec::new() }
    }

    /// Reads the camera's clock (no authentication needed); keeps 0 when it cannot.
    async fn read_clock(&mut self) {
        let action = "http://www.onvif.org/ver10/device/wsdl/GetSystemDateAndTime";
        let envelope = envelope("", "<tds:GetSystemDateAndTime/>");
        let Ok((xml, _)) = post(&self.config.url, action, &envelope, ANSWER_TIMEOUT).await else { return };
        if let Some(camera) = parse_camera_time(&xml) {
            let ahead = camera - crate::time::now_us();
            // The answer has whole seconds: smaller differences are noise.
            self.camera_ahead_us = if ahead.abs() > 2_000_000 { ahead } else { 0 };
            if self.camera_ahead_us != 0 {
                tracing::debug!(camera = %self.camera, ahead_ms = ahead / 1000, "camera clock differs from ours");
            }
        }
    }

    async fn events_service(&self) -> url::Url {
        let device = self.device();
        let attempts = [
            (
                "http://www.onvif.org/ver10/device/wsdl/GetServices",
                "<tds:GetServices><tds:IncludeCapability>false</tds:IncludeCapability></tds:GetServices>",
            ),
            (
                "http://www.onvif.org/ver10/device/wsdl/GetCapabilities",
                "<tds:GetCapabilities><tds:Category>Events</tds:Category></tds:GetCapabilities>",
            ),
        ];
        for (action, body) in attempts {
            match self.call(&device, action, body, ANSWER_TIMEOUT).await {
                Ok((xml, _)) => {
                    if let Some(url) = parse_events_address(&xml, &self.config.url) {
                        return url;
                    }
                }
                Err(e) => tracing::debug!(camera = %self.camera, action, error = %e, "ONVIF device service"),
            }
        }
        let mut url = self.config.url.clone();
        url.set_path("/onvif/event_service");
        url.set_query(None);
        url
    }

    async fn subscribe(&self, events: url::Url) -> Result<(Subscription, SocketAddr), OnvifError> {
        let endpoint = Endpoint { url: events, reference_parameters: Vec::new() };
        let body = format!(
            "<tev:CreatePullPointSubscription><tev:InitialTerminationTime>{TERMINATION}</tev:InitialTerminationTime></tev:CreatePullPointSubscription>"
        );
        let action = "http://www.onvif.org/ver10/events/wsdl/EventPortType/CreatePullPointSubscriptionRequest";
        let (xml, remote) = self.call(&endpoint, action, &body, ANSWER_TIMEOUT).await?;
        Ok((parse_subscription(&xml, &self.config.url, self.camera_now())?, remote))
    }

    async fn pull(&self, subscription: &Subscription, timeout_secs: u64) -> Result<Vec<Notification>, OnvifError> {
        let body = format!(
            "<tev:PullMessages><tev:Timeout>PT{timeout_secs}S</tev:Timeout><tev:MessageLimit>{MESSAGE_LIMIT}</tev:MessageLimit></tev:PullMessages>"
        );
        let action = "http://www.onvif.org/ver10/events/wsdl/PullPointSubscription/PullMessagesRequest";
        let wait = Duration::from_secs(timeout_secs) + ANSWER_TIMEOUT;
        let (xml, _) = self.call(&subscription.endpoint, action, &body, wait).await?;
        parse_pull_messages(&xml)
    }

    async fn renew(&self, subscription: &Subscription) -> Result<Duration, OnvifError> {
        let body = format!("<wsnt:Renew><wsnt:TerminationTime>{TERMINATION}</wsnt:TerminationTime></wsnt:Renew>");
        let action = "http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/RenewRequest";
        let (xml, _) = self.call(&subscription.endpoint, action, &body, ANSWER_TIMEOUT).await?;
        let root = parse_xml(&xml)?;
        let response = soap_body(&root)?.child("RenewResponse").ok_or(OnvifError::Unexpected("RenewResponse"))?;
        Ok(renew_interval(response, self.camera_now()))
    }

    async fn unsubscribe(&self, subscription: &Subscription) -> Result<(), OnvifError> {
        let action = "http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/UnsubscribeRequest";
        self.call(&subscription.endpoint, action, "<wsnt:Unsubscribe/>", UNSUBSCRIBE_TIMEOUT).await.map(|_| ())
    }
}

/// The value of `future`, or `None` if hearth stops first.
async fn or_shutdown<T>(shutdown: &mut Shutdown, future: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        value = future => Some(value),
        _ = shutdown.recv() => None,
    }
}

/// Event bookkeeping across one subscription: the tracker and the open motion event.
struct Recorder {
    camera: String,
    events: Arc<Events>,
    tracker: Tracker,
    open_motion: Option<i64>,
}

impl Recorder {
    async fn act(&mut self, action: Action) {
        let (events, camera, open) = (self.events.clone(), self.camera.clone(), self.open_motion.take());
        let result = tokio::task::spawn_blocking(move || match action {
            Action::MotionStart(t) => events.start(&camera, "motion", "onvif", t, 1.0, None, None).map(Some),
            Action::MotionEnd(t) => {
                if let Some(id) = open {
                    events.end(id, t, 1.0, None)?;
                }
                Ok(None)
            }
            Action::Doorbell(t) => events.instant(&camera, "doorbell", "onvif", t, None).map(|_| open),
        })
        .await;
        match result {
            Ok(Ok(open)) => self.open_motion = open,
            Ok(Err(e)) => tracing::warn!(camera = %self.camera, error = %e, "cannot store ONVIF event"),
            Err(e) => tracing::warn!(camera = %self.camera, error = %e, "ONVIF event task failed"),
        }
    }

    async fn notify(&mut self, notification: &Notification, camera_ahead_us: i64) {
        let time = event_time(notification.utc_time_us, camera_ahead_us, crate::time::now_us());
        match self.tracker.apply(notification, time) {
            Some(action) => self.act(action).await,
            None if notification.signal().is_none() => {
                tracing::debug!(camera = %self.camera, topic = %notification.topic, data = ?notification.data, "ONVIF notification ignored");
            }
            None => {}
        }
    }

    /// The subscription is gone: an open motion event ends now.
    async fn close(&mut self) {
        self.tracker = Tracker::default();
        if self.open_motion.is_some() {
            self.act(Action::MotionEnd(crate::time::now_us())).await;
        }
    }
}

/// Subscribes and pulls until an error (returned) or hearth stops (`Ok`).
async fn session(
    client: &mut Client,
    recorder: &mut Recorder,
    egress: &crate::egress::Connections,
    shutdown: &mut Shutdown,
    recovered: &mut Option<String>,
) -> Result<(), OnvifError> {
    let Some(()) = or_shutdown(shutdown, client.read_clock()).await else { return Ok(()) };
    let Some(events_url) = or_shutdown(shutdown, client.events_service()).await else { return Ok(()) };
    let Some(subscribed) = or_shutdown(shutdown, client.subscribe(events_url)).await else { return Ok(()) };
    let (mut subscription, remote) = subscribed?;
    let _registration = egress.register("onvif", &client.camera, remote);
    match recovered.take() {
        Some(_) => tracing::info!(camera = %client.camera, "ONVIF events subscribed again"),
        None => {
            tracing::info!(camera = %client.camera, renew_s = subscription.renew_every.as_secs_f32(), "ONVIF events subscribed")
        }
    }
    let mut renew_at = Instant::now() + subscription.renew_every;
    let result = loop {
        let now = Instant::now();
        if now >= renew_at {
            match or_shutdown(shutdown, client.renew(&subscription)).await {
                None => break Ok(()),
                Some(Err(e)) => break Err(e),
                Some(Ok(every)) => {
                    tracing::debug!(camera = %client.camera, renew_s = every.as_secs_f32(), "ONVIF subscription renewed");
                    subscription.renew_every = every;
                    renew_at = Instant::now() + every;
                }
            }
            continue;
        }
        // A pull must not outlast the subscription: wait at most until the next renewal.
        let timeout = (renew_at - now).as_secs().clamp(1, PULL_TIMEOUT_SECS);
        match or_shutdown(shutdown, client.pull(&subscription, timeout)).await {
            None => break Ok(()),
            Some(Err(e)) => break Err(e),
            Some(Ok(notifications)) => {
                for notification in &notifications {
                    recorder.notify(notification, client.camera_ahead_us).await;
                }
            }
        }
    };
    if result.is_ok() {
        if let Err(e) = client.unsubscribe(&subscription).await {
            tracing::debug!(camera = %client.camera, error = %e, "ONVIF unsubscribe failed");
        }
    }
    result
}

/// Keeps `camera`'s ONVIF event subscription until `shutdown`; its events go to `events`.
pub async fn run(
    camera: String,
    config: OnvifConfig,
    events: Arc<Events>,
    egress: crate::egress::Connections,
    mut shutdown: Shutdown,
) {
    let url = redacted_url(&config.url);
    let mut client = Client { camera: camera.clone(), config, camera_ahead_us: 0 };
    let mut recorder = Recorder { camera: camera.clone(), events, tracker: Tracker::default(), open_motion: None };
    let mut backoff = BACKOFF_MIN;
    let mut last_error: Option<String> = None;
    loop {
        let started = Instant::now();
        let result = session(&mut client, &mut recorder, &egress, &mut shutdown, &mut last_error).await;
        recorder.close().await;
        let Err(error) = result else { break };
        if shutdown.is_shutdown() {
            break;
        }
        let message = error.to_string();
        if last_error.as_deref() != Some(&message) {
            tracing::warn!(camera = %camera, url = %url, error = %message, "ONVIF events unavailable; retrying with backoff");
            last_error = Some(message);
        }
        if started.elapsed() > BACKOFF_MAX {
            backoff = BACKOFF_MIN; // it worked for a while: this is a new outage
        }
        let delay = backoff.mul_f64(0.8 + rand::random::<f64>() * 0.4);
        backoff = (backoff * 2).min(BACKOFF_MAX);
        if or_shutdown(&mut shutdown, tokio::time::sleep(delay)).await.is_none() {
            break;
        }
    }
    tracing::debug!(camera = %camera, "ONVIF events stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn envelope_of(body: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:tev="http://www.onvif.org/ver10/events/wsdl"
  xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" xmlns:tt="http://www.onvif.org/ver10/schema"
  xmlns:tns1="http://www.onvif.org/ver10/topics" xmlns:wsa5="http://www.w3.org/2005/08/addressing">
<env:Header><wsa5:Action>http://www.onvif.org/ver10/events/wsdl/PullPointSubscription/PullMessagesResponse</wsa5:Action></env:Header>
<env:Body>{body}</env:Body></env:Envelope>"#
        )
    }

    /// The shape of the ONVIF Core specification's example, with a Hikvision-style pair of
    /// motion topics.
    const HIKVISION: &str = r#"<tev:PullMessagesResponse>
<tev:CurrentTime>2026-03-01T10:00:05Z</tev:CurrentTime><tev:TerminationTime>2026-03-01T10:01:05Z</tev:TerminationTime>
<wsnt:NotificationMessage>
  <wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">tns1:RuleEngine/CellMotionDetector/Motion</wsnt:Topic>
  <wsnt:Message><tt:Message UtcTime="2026-03-01T10:00:04Z" PropertyOperation="Changed">
    <tt:Source><tt:SimpleItem Name="VideoSourceConfigurationToken" Value="VideoSourceToken"/>
      <tt:SimpleItem Name="VideoAnalyticsConfigurationToken" Value="VideoAnalyticsToken"/>
      <tt:SimpleItem Name="Rule" Value="MyMotionDetectorRule"/></tt:Source>
    <tt:Data><tt:SimpleItem Name="IsMotion" Value="true"/></tt:Data>
  </tt:Message></wsnt:Message>
</wsnt:NotificationMessage>
<wsnt:NotificationMessage>
  <wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">tns1:VideoSource/MotionAlarm</wsnt:Topic>
  <wsnt:Message><tt:Message UtcTime="2026-03-01T10:00:04.500Z" PropertyOperation="Changed">
    <tt:Source><tt:SimpleItem Name="Source" Value="VideoSource_1"/></tt:Source>
    <tt:Data><tt:SimpleItem Name="State" Value="true"/></tt:Data>
  </tt:Message></wsnt:Message>
</wsnt:NotificationMessage>
</tev:PullMessagesResponse>"#;

    /// Axis: its own prefixes for everything, a vendor topic segment, `active` as 1/0, and
    /// the SOAP 1.2 namespace under another prefix.
    const AXIS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2"
 xmlns:tns1="http://www.onvif.org/ver10/topics" xmlns:tnsaxis="http://www.axis.com/2009/event/topics" xmlns:tt="http://www.onvif.org/ver10/schema"
 xmlns:tev="http://www.onvif.org/ver10/events/wsdl"><SOAP-ENV:Header></SOAP-ENV:Header><SOAP-ENV:Body>
<tev:PullMessagesResponse><tev:CurrentTime>2026-03-01T10:00:05Z</tev:CurrentTime><tev:TerminationTime>2026-03-01T10:01:05Z</tev:TerminationTime>
<wsnt:NotificationMessage><wsnt:Topic Dialect="http://docs.oasis-open.org/wsn/t-1/TopicExpression/Simple">tns1:RuleEngine/tnsaxis:VMD3/vmd3_video_1</wsnt:Topic>
<wsnt:ProducerReference><wsa:Address xmlns:wsa="http://www.w3.org/2005/08/addressing">uri://5fa1f5a2-8b64-4e1b-a00f-d0f1e7a5c6e0/ProducerReference</wsa:Address></wsnt:ProducerReference>
<wsnt:Message><tt:Message UtcTime="2026-03-01T10:00:04.123456Z" PropertyOperation="Initialized"><tt:Source><tt:SimpleItem Name="areaid" Value="0"></tt:SimpleItem></tt:Source>
<tt:Key></tt:Key><tt:Data><tt:SimpleItem Name="active" Value="1"></tt:SimpleItem></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>
<wsnt:NotificationMessage><wsnt:Topic Dialect="http://docs.oasis-open.org/wsn/t-1/TopicExpression/Simple">tns1:Device/tnsaxis:IO/VirtualInput</wsnt:Topic>
<wsnt:Message><tt:Message UtcTime="2026-03-01T10:00:04Z" PropertyOperation="Initialized"><tt:Source><tt:SimpleItem Name="port" Value="1"/></tt:Source>
<tt:Data><tt:SimpleItem Name="active" Value="0"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>
</tev:PullMessagesResponse></SOAP-ENV:Body></SOAP-ENV:Envelope>"#;

    /// Reolink: a doorbell's visitor rule, a person rule, default namespaces and no zone on
    /// the time.
    const REOLINK: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>
<PullMessagesResponse xmlns="http://www.onvif.org/ver10/events/wsdl">
<CurrentTime>2026-03-01T10:00:05Z</CurrentTime><TerminationTime>2026-03-01T10:01:05Z</TerminationTime>
<NotificationMessage xmlns="http://docs.oasis-open.org/wsn/b-2"><Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">tns1:RuleEngine/MyRuleDetector/Visitor</Topic>
<Message><Message xmlns="http://www.onvif.org/ver10/schema" UtcTime="2026-03-01T10:00:04" PropertyOperation="Changed">
<Source><SimpleItem Name="Source" Value="000"/></Source><Data><SimpleItem Name="State" Value="true"/></Data></Message></Message></NotificationMessage>
<NotificationMessage xmlns="http://docs.oasis-open.org/wsn/b-2"><Topic>tns1:RuleEngine/MyRuleDetector/PeopleDetect</Topic>
<Message><Message xmlns="http://www.onvif.org/ver10/schema" UtcTime="2026-03-01T10:00:04Z" PropertyOperation="Changed">
<Source><SimpleItem Name="Source" Value="000"/></Source><Data><SimpleItem Name="State" Value="true"/></Data></Message></Message></NotificationMessage>
</PullMessagesResponse></s:Body></s:Envelope>"#;

    fn at(text: &str) -> i64 {
        parse_onvif_time(text).unwrap()
    }

    #[test]
    fn hikvision_motion_topics() {
        let notifications = parse_pull_messages(&envelope_of(HIKVISION)).unwrap();
        assert_eq!(notifications.len(), 2);
        let cell = &notifications[0];
        assert_eq!(cell.topic, "RuleEngine/CellMotionDetector/Motion");
        assert_eq!(cell.utc_time_us, Some(at("2026-03-01T10:00:04Z")));
        assert_eq!(cell.operation.as_deref(), Some("Changed"));
        assert_eq!(cell.source.len(), 3);
        assert_eq!(cell.data, vec![("IsMotion".to_owned(), "true".to_owned())]);
        assert_eq!(cell.signal(), Some(Signal::Motion(true)));
        assert_eq!(notifications[1].topic, "VideoSource/MotionAlarm");
        assert_eq!(notifications[1].signal(), Some(Signal::Motion(true)));
    }

    #[test]
    fn axis_prefixes_and_vendor_topics() {
        let notifications = parse_pull_messages(AXIS).unwrap();
        assert_eq!(notifications[0].topic, "RuleEngine/VMD3/vmd3_video_1");
        assert_eq!(notifications[0].signal(), Some(Signal::Motion(true)));
        assert_eq!(notifications[0].utc_time_us, Some(at("2026-03-01T10:00:04.123456Z")));
        assert_eq!(notifications[0].operation.as_deref(), Some("Initialized"));
        assert_eq!(notifications[1].topic, "Device/IO/VirtualInput");
        assert_eq!(notifications[1].signal(), None, "an I/O port is neither motion nor a doorbell");
    }

    #[test]
    fn reolink_visitor_with_default_namespaces() {
        let notifications = parse_pull_messages(REOLINK).unwrap();
        assert_eq!(notifications[0].topic, "RuleEngine/MyRuleDetector/Visitor");
        assert_eq!(notifications[0].signal(), Some(Signal::Doorbell(true)));
        assert_eq!(notifications[0].utc_time_us, Some(at("2026-03-01T10:00:04Z")), "no zone means UTC");
        assert_eq!(notifications[1].signal(), None, "people detection is not mapped (yet)");
    }

    #[test]
    fn doorbell_topics_by_name() {
        let n = |topic: &str, name: &str, value: &str| Notification {
            topic: normalize_topic(topic),
            utc_time_us: None,
            operation: None,
            source: vec![],
            data: vec![(name.into(), value.into())],
        };
        assert_eq!(n("tns1:Device/Trigger/DoorBell", "State", "true").signal(), Some(Signal::Doorbell(true)));
        assert_eq!(n("tns1:Device/tnsvendor:CallStatus", "Value", "ringing").signal(), Some(Signal::Doorbell(true)));
        assert_eq!(n("tns1:VideoSource/MotionAlarm", "State", "false").signal(), Some(Signal::Motion(false)));
        assert_eq!(n("tns1:VideoSource/MotionAlarm", "State", "maybe").signal(), None);
        assert_eq!(n("tns1:VideoSource/ImageTooDark", "State", "true").signal(), None);
    }

    #[test]
    fn empty_pulls_and_faults() {
        let empty = envelope_of("<tev:PullMessagesResponse><tev:CurrentTime>2026-03-01T10:00:05Z</tev:CurrentTime></tev:PullMessagesResponse>");
        assert_eq!(parse_pull_messages(&empty).unwrap(), vec![]);
        let fault = envelope_of(
            r#"<env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode><env:Value xmlns:ter="http://www.onvif.org/ver10/error">ter:NotAuthorized</env:Value></env:Subcode></env:Code>
            <env:Reason><env:Text xml:lang="en">Sender not Authorized</env:Text></env:Reason></env:Fault>"#,
        );
        match parse_pull_messages(&fault) {
            Err(OnvifError::Fault { code, reason }) => {
                assert_eq!(code, "NotAuthorized");
                assert_eq!(reason, "Sender not Authorized");
            }
            other => panic!("{other:?}"),
        }
        let soap11 = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>bad &amp; wrong</faultstring></s:Fault></s:Body></s:Envelope>"#;
        assert!(
            matches!(parse_pull_messages(soap11), Err(OnvifError::Fault { reason, .. }) if reason == "bad & wrong")
        );
    }

    #[test]
    fn garbage_is_an_error() {
        for garbage in [
            "",
            "not xml at all",
            "<a><b></a>",
            "<s:Envelope><s:Body><tev:PullMessagesResponse>",
            "<Envelope><Body/></Envelope>",
            "<html><body>404</body></html>",
            "<a/><b/>",
            "<a>&unknown;</a>",
            "\u{0}\u{1}<<<>>>",
        ] {
            assert!(parse_pull_messages(garbage).is_err(), "{garbage:?}");
        }
        let deep = format!("{}{}", "<a>".repeat(10_000), "</a>".repeat(10_000));
        assert!(matches!(parse_pull_messages(&deep), Err(OnvifError::TooDeep)));
    }

    fn notification(topic: &str, item: &str, value: &str, operation: &str, source: &str) -> Notification {
        Notification {
            topic: topic.into(),
            utc_time_us: None,
            operation: Some(operation.into()),
            source: vec![("Source".into(), source.into())],
            data: vec![(item.into(), value.into())],
        }
    }

    #[test]
    fn one_motion_event_while_any_source_is_active() {
        let mut tracker = Tracker::default();
        let cell = |v| notification("RuleEngine/CellMotionDetector/Motion", "IsMotion", v, "Changed", "1");
        let alarm = |v| notification("VideoSource/MotionAlarm", "State", v, "Changed", "1");
        assert_eq!(
            tracker.apply(&notification("VideoSource/MotionAlarm", "State", "false", "Initialized", "1"), 0),
            None
        );
        assert_eq!(tracker.apply(&cell("true"), 1), Some(Action::MotionStart(1)));
        assert_eq!(tracker.apply(&alarm("true"), 2), None);
        assert_eq!(tracker.apply(&cell("false"), 3), None);
        assert_eq!(tracker.apply(&alarm("false"), 4), Some(Action::MotionEnd(4)));
        assert_eq!(tracker.apply(&alarm("false"), 5), None);
        let initialized = notification("VideoSource/MotionAlarm", "State", "true", "Initialized", "1");
        assert_eq!(tracker.apply(&initialized, 6), Some(Action::MotionStart(6)), "motion going on at subscription");
    }

    #[test]
    fn a_press_is_one_doorbell_event() {
        let mut tracker = Tracker::default();
        let visitor = |v, op| notification("RuleEngine/MyRuleDetector/Visitor", "State", v, op, "000");
        assert_eq!(tracker.apply(&visitor("true", "Initialized"), 0), None, "state at subscription, not a press");
        assert_eq!(tracker.apply(&visitor("true", "Changed"), 10_000_000), Some(Action::Doorbell(10_000_000)));
        assert_eq!(tracker.apply(&visitor("true", "Changed"), 11_000_000), None, "repeated while ringing");
        assert_eq!(tracker.apply(&visitor("false", "Changed"), 12_000_000), None);
        assert_eq!(tracker.apply(&visitor("true", "Changed"), 12_500_000), Some(Action::Doorbell(12_500_000)));
    }

    #[test]
    fn event_times_follow_the_hub_clock() {
        let now = 1_000_000_000_000;
        assert_eq!(event_time(Some(now - 5_000_000), 0, now), now - 5_000_000);
        assert_eq!(event_time(Some(now + 3_600_000_000), 3_600_000_000, now), now, "camera an hour ahead");
        assert_eq!(event_time(Some(0), 0, now), now, "a camera that thinks it is 1970");
        assert_eq!(event_time(None, 0, now), now);
        assert_eq!(event_time(Some(i64::MIN), i64::MAX, now), now);
    }

    #[test]
    fn password_digest_matches_the_profile() {
        // Computed independently: base64(sha1(nonce || created || password)).
        let nonce = base64::engine::general_purpose::STANDARD.decode("LKqI6G/AikKCQrN0zqZFlg==").unwrap();
        assert_eq!(password_digest(&nonce, "2010-09-16T07:50:45Z", "userpassword"), "tuOSpGlFlIXsozq4HFNeeGeFLEI=");
        let header = security_header("ad<min", "pw", 0);
        assert!(header.contains("<wsse:Username>ad&lt;min</wsse:Username>"));
        assert!(header.contains("<wsu:Created>1970-01-01T00:00:00.000Z</wsu:Created>"));
    }

    #[test]
    fn subscription_reference_and_renew_interval() {
        let xml = envelope_of(
            r#"<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference>
<wsa5:Address>http://10.0.0.99:8080/onvif/Subscription?Idx=3</wsa5:Address>
<wsa5:ReferenceParameters><dom0:SubscriptionId xmlns:dom0="http://www.axis.com/2009/event">7</dom0:SubscriptionId><tt:Other>x</tt:Other></wsa5:ReferenceParameters>
</tev:SubscriptionReference><wsnt:CurrentTime>2026-03-01T10:00:00Z</wsnt:CurrentTime><wsnt:TerminationTime>2026-03-01T10:00:04Z</wsnt:TerminationTime>
</tev:CreatePullPointSubscriptionResponse>"#,
        );
        let device = url::Url::parse("http://192.168.1.20/onvif/device_service").unwrap();
        let subscription = parse_subscription(&xml, &device, 0).unwrap();
        assert_eq!(
            subscription.endpoint.url.as_str(),
            "http://192.168.1.20/onvif/Subscription?Idx=3",
            "only the configured host"
        );
        assert_eq!(subscription.renew_every, Duration::from_secs(2));
        let parameters = &subscription.endpoint.reference_parameters;
        assert_eq!(parameters.len(), 2);
        assert!(parameters[0].starts_with(r#"<dom0:SubscriptionId xmlns:env=""#), "{}", parameters[0]);
        assert!(parameters[0].contains(r#"xmlns:dom0="http://www.axis.com/2009/event">7</dom0:SubscriptionId>"#));
        assert!(parameters[1].contains(r#"xmlns:tt="http://www.onvif.org/ver10/schema""#), "{}", parameters[1]);
        assert!(parameters[1].contains(r#"wsa:IsReferenceParameter="true""#));
        // Parameters echoed into a request still parse.
        let request = envelope(&parameters.join(""), "<x/>");
        assert!(parse_xml(&request).is_ok(), "{request}");

        let same_host = url::Url::parse("http://10.0.0.99/onvif/device_service").unwrap();
        assert_eq!(
            parse_subscription(&xml, &same_host, 0).unwrap().endpoint.url.as_str(),
            "http://10.0.0.99:8080/onvif/Subscription?Idx=3"
        );
    }

    #[test]
    fn renew_interval_falls_back_sensibly() {
        let root = parse_xml("<r><TerminationTime>2026-03-01T10:01:00Z</TerminationTime></r>").unwrap();
        assert_eq!(renew_interval(&root, at("2026-03-01T10:00:00Z")), Duration::from_secs(30));
        assert_eq!(renew_interval(&root, at("2026-03-01T11:00:00Z")), DEFAULT_RENEW, "already past");
        assert_eq!(renew_interval(&parse_xml("<r/>").unwrap(), 0), DEFAULT_RENEW);
    }

    #[test]
    fn device_answers() {
        let device = url::Url::parse("http://192.168.1.20/onvif/device_service").unwrap();
        let services = envelope_of(
            r#"<tds:GetServicesResponse xmlns:tds="http://www.onvif.org/ver10/device/wsdl">
<tds:Service><tds:Namespace>http://www.onvif.org/ver10/device/wsdl</tds:Namespace><tds:XAddr>http://192.168.1.20/onvif/device_service</tds:XAddr></tds:Service>
<tds:Service><tds:Namespace>http://www.onvif.org/ver10/events/wsdl</tds:Namespace><tds:XAddr>http://192.168.1.20/onvif/Events</tds:XAddr></tds:Service>
</tds:GetServicesResponse>"#,
        );
        assert_eq!(parse_events_address(&services, &device).unwrap().as_str(), "http://192.168.1.20/onvif/Events");
        let capabilities = envelope_of(
            r#"<tds:GetCapabilitiesResponse xmlns:tds="http://www.onvif.org/ver10/device/wsdl"><tds:Capabilities>
<tt:Events><tt:XAddr>http://172.16.0.5/onvif/event</tt:XAddr><tt:WSPullPointSupport>true</tt:WSPullPointSupport></tt:Events>
</tds:Capabilities></tds:GetCapabilitiesResponse>"#,
        );
        assert_eq!(parse_events_address(&capabilities, &device).unwrap().as_str(), "http://192.168.1.20/onvif/event");
        let time = envelope_of(
            r#"<tds:GetSystemDateAndTimeResponse xmlns:tds="http://www.onvif.org/ver10/device/wsdl"><tds:SystemDateAndTime>
<tt:DateTimeType>NTP</tt:DateTimeType><tt:UTCDateTime><tt:Time><tt:Hour>10</tt:Hour><tt:Minute>0</tt:Minute><tt:Second>7</tt:Second></tt:Time>
<tt:Date><tt:Year>2026</tt:Year><tt:Month>3</tt:Month><tt:Day>1</tt:Day></tt:Date></tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"#,
        );
        assert_eq!(parse_camera_time(&time), Some(at("2026-03-01T10:00:07Z")));
    }

    #[test]
    fn http_responses() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse_response(plain, false).unwrap(), Some((200, b"hello".to_vec())));
        assert_eq!(parse_response(&plain[..plain.len() - 1], false).unwrap(), None);
        assert!(parse_response(&plain[..plain.len() - 1], true).is_err());
        let chunked = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked, false).unwrap(), Some((500, b"abcde".to_vec())));
        let until_close = b"HTTP/1.0 200 OK\r\n\r\nbody";
        assert_eq!(parse_response(until_close, false).unwrap(), None);
        assert_eq!(parse_response(until_close, true).unwrap(), Some((200, b"body".to_vec())));
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n", false).is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", false).is_err());
        assert!(decode_chunked(b"zz\r\n").is_err());
        assert!(decode_chunked(b"ffffffffffffffffffff\r\n").is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
            let _ = parse_pull_messages(&text);
            let _ = parse_subscription(&text, &url::Url::parse("http://a/").unwrap(), 0);
        }

        #[test]
        fn damaged_messages_never_panic(cut in 0usize..3000, insert in "[<>&;/\"'=: a-zA-Z]{0,8}") {
            let mut text = envelope_of(HIKVISION);
            let mut at = cut.min(text.len());
            while !text.is_char_boundary(at) { at -= 1; }
            text.insert_str(at, &insert);
            if let Ok(notifications) = parse_pull_messages(&text) {
                let mut tracker = Tracker::default();
                for n in &notifications { let _ = tracker.apply(n, 0); }
            }
            let _ = parse_pull_messages(&text[..at]);
        }

        #[test]
        fn arbitrary_http_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), eof in any::<bool>()) {
            let _ = parse_response(&bytes, eof);
            let _ = decode_chunked(&bytes);
            let mut framed = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            framed.extend_from_slice(&bytes);
            let _ = parse_response(&framed, eof);
        }
    }
}
