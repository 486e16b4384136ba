//! LAN-only: which clients may talk to the hub at all, and under which names.
//!
//! Two checks run before any handler, on every request including static files:
//! - the peer address must be inside `web.allowed_networks` (by default loopback, RFC 1918,
//!   link-local and IPv6 unique-local; the owner adds a VPN subnet). A port forwarded by
//!   mistake on the router then still serves nobody on the internet.
//! - the `Host` header must be one of the hub's own names or an IP literal. A malicious web
//!   page can point its own DNS name at the hub's LAN address (DNS rebinding) to make a
//!   visitor's browser talk to the hub; the browser still sends that foreign name as `Host`,
//!   so it is refused here.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::WebConfig;

/// Who may connect and which `Host` names are ours.
#[derive(Clone, Debug)]
pub struct AccessPolicy {
    networks: Vec<IpNet>,
    names: Vec<String>,
}

impl AccessPolicy {
    pub fn new(networks: Vec<IpNet>, extra_names: &[String]) -> AccessPolicy {
        let (mut names, _) = crate::web::tls::hub_names();
        names.extend(extra_names.iter().cloned());
        let names = names.into_iter().map(|n| n.trim_end_matches('.').to_ascii_lowercase()).collect();
        AccessPolicy { networks, names }
    }

    pub fn from_config(web: &WebConfig) -> AccessPolicy {
        AccessPolicy::new(web.allowed_networks.clone(), &web.hostnames)
    }

    /// Whether a client at `peer` may connect. IPv4 clients on a dual-stack socket appear as
    /// `::ffff:a.b.c.d` and are judged by their IPv4 address.
    pub fn allows_peer(&self, peer: IpAddr) -> bool {
        let peer = canonical(peer);
        self.networks.iter().any(|n| n.contains(&peer))
    }

    /// Whether `host` (a `Host` header, maybe with a port) names this hub.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host_without_port(host.trim());
        if host.is_empty() {
            return false;
        }
        if host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok() {
            return true; // an address typed by the user: no DNS name to rebind
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.names.contains(&host)
    }
}

pub fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(address),
        v4 => v4,
    }
}

fn host_without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest.find(']').map(|end| &host[..end + 2]).unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_ALLOWED_NETWORKS;

    fn default_policy() -> AccessPolicy {
        let networks = DEFAULT_ALLOWED_NETWORKS.iter().map(|n| n.parse().unwrap()).collect();
        AccessPolicy::new(networks, &["nvr.home.arpa".to_owned()])
    }

    #[test]
    fn private_networks_are_allowed_and_the_internet_is_not() {
        let policy = default_policy();
        for ok in [
            "127.0.0.1",
            "::1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.20",
            "169.254.3.4",
            "fe80::1",
            "fd12:3456::1",
            "::ffff:192.168.1.9",
        ] {
            assert!(policy.allows_peer(ok.parse().unwrap()), "{ok}");
        }
        for no in ["8.8.8.8", "172.32.0.1", "100.64.0.1", "2001:db8::1", "::ffff:8.8.8.8", "0.0.0.0"] {
            assert!(!policy.allows_peer(no.parse().unwrap()), "{no}");
        }
    }

    #[test]
    fn host_header_must_name_the_hub() {
        let policy = default_policy();
        for ok in [
            "localhost",
            "localhost:8080",
            "LOCALHOST.",
            "127.0.0.1:8443",
            "192.168.1.20",
            "[::1]:8443",
            "[fe80::1]",
            "nvr.home.arpa:443",
        ] {
            assert!(policy.allows_host(ok), "{ok}");
        }
        for no in ["evil.example", "evil.example:8080", "localhost.evil.example", "", ":8080", "nvr.home.arpa.evil"] {
            assert!(!policy.allows_host(no), "{no}");
        }
    }

    #[test]
    fn ports_are_stripped_correctly() {
        assert_eq!(host_without_port("a.b:80"), "a.b");
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
        assert_eq!(host_without_port("::1"), "::1");
        assert_eq!(host_without_port("name"), "name");
    }
}
