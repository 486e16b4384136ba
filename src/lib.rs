//! hearth: a privacy-respecting home NVR.
//!
//! Cameras are pulled over RTSP ([`camera`]), cut into fragmented-MP4 clips ([`recorder`],
//! [`mux`]), encrypted to the hub's age public key on the way to disk ([`crypto`], [`clip`]),
//! indexed in SQLite ([`db`]), kept within budget ([`retention`]) and recovered after a crash
//! ([`recovery`]). [`live`] fans a camera out to viewers, [`web`] serves the API and UI
//! ([`playback`] decrypts ranges and exports, [`snapshot`] decodes keyframes), [`serve`] ties
//! them into the running service, reporting to systemd through [`notify`]; [`doctor`] checks a
//! hub's setup; [`media`] is the helper process in which alone libav runs; [`demo`] is a built-in synthetic camera. Who may see what is decided by
//! [`auth`] (accounts, sessions, grants), [`lan`] (networks and host names) and recorded by
//! [`audit`]; [`egress`] lists every outbound connection. [`motion`] finds motion and
//! [`events`] keeps and announces it. See ARCHITECTURE.md for the codemap and the invariants.

pub mod audit;
pub mod auth;
pub mod camera;
pub mod clip;
pub mod config;
pub mod crypto;
pub mod db;
pub mod demo;
pub mod doctor;
pub mod egress;
pub mod events;
pub mod fault;
pub mod gate;
pub mod lan;
pub mod live;
pub mod media;
pub mod motion;
pub mod mqtt;
pub mod mux;
pub mod notify;
pub mod onvif;
pub mod playback;
pub mod recorder;
pub mod recovery;
pub mod retention;
pub mod serve;
pub mod shutdown;
pub mod snapshot;
pub mod time;
pub mod web;
