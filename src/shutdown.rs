//! Shutdown as a type: every long-running task holds a [`Shutdown`] and stops at its next
//! safe point once the [`ShutdownTrigger`] fires (SIGTERM, SIGINT, or the end of a test).
//! Tasks finish what they hold — a camera closes its open clip — before exiting.

use tokio::sync::watch;

/// Fires the shutdown. Dropping it fires it too, so a panicking owner cannot leave tasks
/// running forever.
pub struct ShutdownTrigger(watch::Sender<bool>);

/// Listens for the shutdown.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    pub fn is_shutdown(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown has been requested (immediately if it already was).
    pub async fn recv(&mut self) {
        // An error means the trigger was dropped, which counts as shutdown.
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn all_listeners_hear_it_even_late_ones() {
        let (trigger, mut early) = channel();
        assert!(!early.is_shutdown());
        trigger.trigger();
        early.recv().await;
        let mut late = trigger.subscribe();
        late.recv().await;
        assert!(late.is_shutdown());
    }

    #[tokio::test]
    async fn dropping_the_trigger_shuts_down() {
        let (trigger, mut listener) = channel();
        drop(trigger);
        listener.recv().await;
    }
}
