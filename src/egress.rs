//! Outbound connections, from the hub's own bookkeeping.
//!
//! hearth's promise is that nothing leaves the house: the only connections it opens are to
//! the configured cameras (and, later, the owner's own MQTT broker). Every long-lived outbound
//! connection registers here while it is open, so the "connections" page can list exactly
//! what the hub holds, with no guessing from outside. The systemd unit's `IPAddressDeny=`
//! enforces the same promise in the kernel; a test traces `connect()` to prove it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// One open outbound connection.
#[derive(Clone, Debug, Serialize)]
pub struct Connection {
    pub id: u64,
    /// What it is for: `camera` (RTSP).
    pub purpose: &'static str,
    /// Which configured thing it belongs to (a camera name).
    pub owner: String,
    pub remote: String,
    pub since_us: i64,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    open: Vec<Connection>,
}

/// The registry, shared by everything that connects out.
#[derive(Clone, Default)]
pub struct Connections {
    inner: Arc<Mutex<Inner>>,
}

/// Keeps a connection listed until dropped.
pub struct Registration {
    id: u64,
    inner: Arc<Mutex<Inner>>,
}

impl Connections {
    pub fn new() -> Connections {
        Connections::default()
    }

    pub fn register(&self, purpose: &'static str, owner: &str, remote: SocketAddr) -> Registration {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.next_id += 1;
        let id = inner.next_id;
        inner.open.push(Connection {
            id,
            purpose,
            owner: owner.to_owned(),
            remote: remote.to_string(),
            since_us: crate::time::now_us(),
        });
        Registration { id, inner: self.inner.clone() }
    }

    pub fn list(&self) -> Vec<Connection> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).open.clone()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.open.retain(|c| c.id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_list_until_dropped() {
        let connections = Connections::new();
        let a = connections.register("camera", "doorbell", "192.168.1.20:554".parse().unwrap());
        let b = connections.register("camera", "garden", "192.168.1.21:554".parse().unwrap());
        assert_eq!(connections.list().len(), 2);
        drop(a);
        let left = connections.list();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].owner, "garden");
        assert_eq!(left[0].remote, "192.168.1.21:554");
        drop(b);
        assert!(connections.list().is_empty());
    }
}
