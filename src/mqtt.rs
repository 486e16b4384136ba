//! MQTT: events to the household's own broker, and Home Assistant discovery.
//!
//! Optional (`[mqtt]` in the config). For every event notice the publisher sends
//! `<prefix>/<camera>/<kind>` a JSON payload (`{id, camera, kind, phase, time, score,
//! event_type}`), keeps `<prefix>/<camera>/motion/state` `ON`/`OFF` (retained) for motion, and,
//! when `snapshots` is on, a JPEG of the moment to `<prefix>/<camera>/snapshot`. With
//! discovery on, each camera appears in Home Assistant as a device with a motion binary
//! sensor, a doorbell event entity and a snapshot camera; `<prefix>/status` is
//! `online`/`offline` (the broker sends `offline` itself if hearth dies: a last will).
//!
//! The broker is the only outbound connection besides the cameras, so the config refuses a
//! broker address outside private networks, and the connection is listed on the
//! connections page while it is open. Reconnects are left to rumqttc's event loop, paced
//! here with a backoff.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use serde_json::json;

use crate::camera::CameraHandle;
use crate::config::MqttConfig;
use crate::events::{Events, Notice};
use crate::shutdown::Shutdown;

/// Messages queued for the broker before `try_publish` refuses more (a broker that is down
/// must not make hearth buffer without bound).
const QUEUE: usize = 64;
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

fn options(config: &MqttConfig) -> MqttOptions {
    let mut options = MqttOptions::new(format!("hearth-{}", std::process::id()), &config.host, config.port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(4 << 20, 4 << 20);
    if let Some(user) = &config.username {
        options.set_credentials(user, config.password.clone().unwrap_or_default());
    }
    let status = format!("{}/status", config.topic_prefix);
    options.set_last_will(LastWill::new(status, "offline", QoS::AtLeastOnce, true));
    if config.tls {
        crate::web::tls::install_crypto_provider();
        let transport = match &config.ca_pem {
            Some(ca) => rumqttc::Transport::tls(ca.clone(), None, None),
            None => rumqttc::Transport::tls_with_default_config(),
        };
        options.set_transport(transport);
    }
    options
}

/// Runs until `shutdown`: connects, announces, forwards every event notice.
pub async fn run(
    config: MqttConfig,
    cameras: Arc<Vec<CameraHandle>>,
    events: Arc<Events>,
    media: crate::media::Media,
    egress: crate::egress::Connections,
    mut shutdown: Shutdown,
) {
    let (client, mut eventloop) = AsyncClient::new(options(&config), QUEUE);
    let mut notices = events.subscribe();
    let mut registration = None;
    let mut backoff = BACKOFF_MIN;
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    tracing::info!(broker = %config.host, port = config.port, "MQTT connected");
                    last_error = None;
                    backoff = BACKOFF_MIN;
                    registration = resolve(&config).await.map(|remote| egress.register("mqtt", "broker", remote));
                    announce(&client, &config, &cameras);
                }
                Ok(_) => {}
                Err(e) => {
                    registration = None;
                    let message = e.to_string();
                    if last_error.as_deref() != Some(&message) {
                        tracing::warn!(broker = %config.host, error = %message, "MQTT broker unreachable; retrying with backoff");
                        last_error = Some(message);
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.recv() => break,
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            },
            notice = notices.recv() => match notice {
                Ok(notice) => publish_notice(&client, &config, &cameras, &media, &notice).await,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "MQTT publisher fell behind; some events were not published");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            _ = shutdown.recv() => break,
        }
    }
    if registration.is_some() {
        let _ = client.try_publish(format!("{}/status", config.topic_prefix), QoS::AtLeastOnce, true, "offline");
        let _ = client.try_disconnect();
        // Let the event loop send them (bounded).
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(event) = eventloop.poll().await {
                if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
    }
    drop(registration);
}

async fn resolve(config: &MqttConfig) -> Option<std::net::SocketAddr> {
    tokio::net::lookup_host((config.host.as_str(), config.port)).await.ok()?.next()
}

fn publish(client: &AsyncClient, topic: String, retain: bool, payload: impl Into<Vec<u8>>) {
    if let Err(e) = client.try_publish(&topic, QoS::AtLeastOnce, retain, payload.into()) {
        tracing::debug!(%topic, error = %e, "MQTT message dropped (broker away or queue full)");
    }
}

/// Online status and, with discovery on, one Home Assistant device per camera.
fn announce(client: &AsyncClient, config: &MqttConfig, cameras: &[CameraHandle]) {
    let prefix = &config.topic_prefix;
    publish(client, format!("{prefix}/status"), true, "online");
    let Some(discovery) = &config.discovery_prefix else { return };
    for camera in cameras {
        for (component, object, payload) in discovery_configs(prefix, &camera.name, config.snapshots) {
            let topic = format!("{discovery}/{component}/hearth_{}/{object}/config", camera.name);
            publish(client, topic, true, payload.to_string());
        }
    }
}

/// Home Assistant MQTT discovery documents for one camera: (component, object id, config).
pub fn discovery_configs(
    prefix: &str,
    camera: &str,
    snapshots: bool,
) -> Vec<(&'static str, &'static str, serde_json::Value)> {
    let device = json!({
        "identifiers": [format!("hearth_{camera}")],
        "name": camera,
        "manufacturer": "hearth",
        "model": "camera recorded by hearth",
    });
    let availability = format!("{prefix}/status");
    let mut configs = vec![
        (
            "binary_sensor",
            "motion",
            json!({
                "name": "Motion",
                "unique_id": format!("hearth_{camera}_motion"),
                "state_topic": format!("{prefix}/{camera}/motion/state"),
                "device_class": "motion",
                "availability_topic": availability,
                "device": device,
            }),
        ),
        (
            "event",
            "doorbell",
            json!({
                "name": "Doorbell",
                "unique_id": format!("hearth_{camera}_doorbell"),
                "state_topic": format!("{prefix}/{camera}/doorbell"),
                "event_types": ["press"],
                "device_class": "doorbell",
                "availability_topic": availability,
                "device": device,
            }),
        ),
    ];
    if snapshots {
        configs.push((
            "camera",
            "snapshot",
            json!({
                "name": "Snapshot",
                "unique_id": format!("hearth_{camera}_snapshot"),
                "topic": format!("{prefix}/{camera}/snapshot"),
                "availability_topic": availability,
                "device": device,
            }),
        ));
    }
    configs
}

/// The JSON a notice becomes; `event_type` is what Home Assistant's event entity reads.
pub fn notice_payload(notice: &Notice) -> serde_json::Value {
    let event_type = if notice.kind == "doorbell" { "press" } else { notice.kind.as_str() };
    json!({
        "id": notice.id,
        "camera": notice.camera,
        "kind": notice.kind,
        "phase": notice.phase,
        "time": crate::time::format_us(notice.time_us),
        "score": notice.score,
        "event_type": event_type,
    })
}

async fn publish_notice(
    client: &AsyncClient,
    config: &MqttConfig,
    cameras: &[CameraHandle],
    media: &crate::media::Media,
    notice: &Notice,
) {
    let prefix = &config.topic_prefix;
    let camera = &notice.camera;
    publish(client, format!("{prefix}/{camera}/{}", notice.kind), false, notice_payload(notice).to_string());
    if notice.kind == "motion" {
        let state = if notice.phase == "end" { "OFF" } else { "ON" };
        publish(client, format!("{prefix}/{camera}/motion/state"), true, state);
    }
    if config.snapshots && notice.phase != "end" {
        let keyframe = cameras.iter().find(|c| &c.name == camera).and_then(|c| c.live.keyframe());
        if let Some(k) = keyframe {
            match media.keyframe_to_jpeg(&k.sample_entry, &k.data, 1280).await {
                Ok(jpeg) => publish(client, format!("{prefix}/{camera}/snapshot"), true, jpeg),
                Err(e) => tracing::warn!(camera = %camera, error = %e, "no MQTT snapshot"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_describes_one_device_per_camera() {
        let configs = discovery_configs("hearth", "door", true);
        let components: Vec<&str> = configs.iter().map(|(c, _, _)| *c).collect();
        assert_eq!(components, ["binary_sensor", "event", "camera"]);
        for (_, _, config) in &configs {
            assert_eq!(config["device"]["identifiers"][0], "hearth_door");
            assert_eq!(config["availability_topic"], "hearth/status");
        }
        assert_eq!(configs[0].2["state_topic"], "hearth/door/motion/state");
        assert_eq!(configs[1].2["event_types"][0], "press");
        assert_eq!(discovery_configs("hearth", "door", false).len(), 2, "no camera entity without snapshots");
    }

    #[test]
    fn doorbell_payloads_are_home_assistant_presses() {
        let notice =
            Notice { id: 7, camera: "door".into(), kind: "doorbell".into(), phase: "instant", time_us: 0, score: 1.0 };
        let payload = notice_payload(&notice);
        assert_eq!(payload["event_type"], "press");
        assert_eq!(payload["time"], "1970-01-01T00:00:00.000Z");
    }
}
