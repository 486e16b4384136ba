//! TLS for the web UI: the self-signed certificate `hearth init` creates for the hub's names
//! and addresses (rcgen), and loading it (or the owner's own) into rustls.
//!
//! A self-signed certificate is the honest default for a device on a home LAN with no public
//! name: it encrypts, and the owner trusts it once per device (README: "Trusting the hub's
//! certificate"). Owners with their own CA or a reverse proxy point `web.tls_cert`/`tls_key`
//! at their files, or set `web.tls = "off"` behind their proxy.

use std::net::IpAddr;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
}

/// The names a LAN client may use for the hub: its hostname (and `.local` for mDNS),
/// `localhost`, loopback, and every non-loopback address of its interfaces.
pub fn hub_names() -> (Vec<String>, Vec<IpAddr>) {
    let mut names = vec!["localhost".to_owned()];
    if let Some(host) = hostname() {
        names.push(format!("{host}.local"));
        names.insert(0, host);
    }
    let mut addresses: Vec<IpAddr> = vec!["127.0.0.1".parse().expect("literal"), "::1".parse().expect("literal")];
    addresses.extend(interface_addresses());
    addresses.dedup();
    (names, addresses)
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its whole length.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).trim().to_owned();
    (!name.is_empty()).then_some(name)
}

fn interface_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, which is walked read-only and freed once.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return out;
        }
        let mut cursor = list;
        while !cursor.is_null() {
            let addr = (*cursor).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let v4 = &*(addr as *const libc::sockaddr_in);
                        out.push(IpAddr::from(u32::from_be(v4.sin_addr.s_addr).to_be_bytes()));
                    }
                    libc::AF_INET6 => {
                        let v6 = &*(addr as *const libc::sockaddr_in6);
                        out.push(IpAddr::from(v6.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            cursor = (*cursor).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    out.retain(|a| !a.is_loopback());
    out
}

/// Writes a self-signed certificate and its key (mode 0600) for the hub's names.
pub fn create_self_signed(cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    let (names, addresses) = hub_names();
    let mut params = rcgen::CertificateParams::new(names)?;
    params.subject_alt_names.extend(addresses.into_iter().map(rcgen::SanType::IpAddress));
    params.distinguished_name.push(rcgen::DnType::CommonName, "hearth hub");
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "hearth (self-signed)");
    // Valid from today for ten years: renewing a self-signed certificate only means trusting
    // it again on every phone, and `hearth doctor` will warn before it expires.
    let today = chrono::Utc::now().date_naive();
    let (year, month, day) =
        (chrono::Datelike::year(&today), chrono::Datelike::month(&today), chrono::Datelike::day(&today));
    params.not_before = rcgen::date_time_ymd(year, month as u8, day as u8);
    params.not_after = rcgen::date_time_ymd(year + 10, month as u8, day.min(28) as u8);
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    write_file(cert_path, cert.pem().as_bytes(), 0o644)?;
    write_file(key_path, key.serialize_pem().as_bytes(), 0o600)?;
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io_err = |source| TlsError::Io { path: path.to_owned(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err)?;
    }
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(io_err)?;
    file.write_all(bytes).map_err(io_err)?;
    file.sync_all().map_err(io_err)
}

/// rustls needs one process-wide crypto provider; ring is the one compiled in.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificate_names_the_hub() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls/cert.pem"), dir.path().join("tls/key.pem"));
        create_self_signed(&cert, &key).unwrap();
        let pem = std::fs::read_to_string(&cert).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        let (names, addresses) = hub_names();
        assert!(names.contains(&"localhost".to_owned()));
        assert!(addresses.iter().any(|a| a.is_loopback()));
        assert!(create_self_signed(&cert, &key).is_err(), "never overwrites");
    }
}
