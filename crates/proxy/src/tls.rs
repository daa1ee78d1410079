//! TLS listeners: certificates and keys read and checked when a config is compiled, one rustls
//! server config per TLS listener (SNI picks the certificate, ALPN offers `h2` and
//! `http/1.1`, TLS 1.2 and 1.3 only), kept in the snapshot so a reload serves renewed files.
//!
//! File paths are relative to the working directory, as the access log's is.

use crate::tls_sni::{SniResolver, dns_names};
use portico_config::{ConfigErrors, Listener, error::join};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub const ALPN_H2: &[u8] = b"h2";
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The TLS side of one compiled config.
#[derive(Default)]
pub struct TlsSet {
    by_listener: HashMap<SocketAddr, Arc<ServerConfig>>,
    /// Every certificate and key file read, for the config watcher.
    pub files: Vec<PathBuf>,
    /// SHA-256 over the contents of `files`: a renewed certificate changes the snapshot's hash.
    digest: Option<[u8; 32]>,
}

impl fmt::Debug for TlsSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSet")
            .field("listeners", &self.by_listener.keys().collect::<Vec<_>>())
            .field("files", &self.files)
            .finish()
    }
}

impl TlsSet {
    /// The server config of the TLS listener bound to `address`.
    pub fn get(&self, address: &SocketAddr) -> Option<&Arc<ServerConfig>> {
        self.by_listener.get(address)
    }

    /// `config_hash` with the certificate and key contents folded in.
    pub fn fold_hash(&self, config_hash: &str) -> String {
        match self.digest {
            None => config_hash.to_owned(),
            Some(d) => {
                let mut h = Sha256::new();
                h.update(config_hash.as_bytes());
                h.update(d);
                hex(&h.finalize())
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads every TLS listener's certificates and keys; each problem is an error at its location.
pub fn compile(listeners: &[Listener], errors: &mut ConfigErrors) -> TlsSet {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut set = TlsSet::default();
    let mut digest = Sha256::new();
    for (i, l) in listeners.iter().enumerate() {
        let Some(tls) = &l.tls else { continue };
        let at = format!("gateway.listeners[{i}].tls");
        let mut keys = Vec::with_capacity(tls.certificates.len());
        for (j, c) in tls.certificates.iter().enumerate() {
            let at = format!("{at}.certificates[{j}]");
            let mut read = |path: &str, field: &str| -> Option<Vec<u8>> {
                set.files.push(PathBuf::from(path));
                match std::fs::read(path) {
                    Ok(bytes) => {
                        digest.update((bytes.len() as u64).to_le_bytes());
                        digest.update(&bytes);
                        Some(bytes)
                    }
                    Err(e) => {
                        errors.push(join(&at, field), format!("cannot read {path}: {e}"));
                        None
                    }
                }
            };
            let (cert, key) = (read(&c.cert, "cert"), read(&c.key, "key"));
            let (Some(cert), Some(key)) = (cert, key) else { continue };
            match certified_key(&cert, &c.cert, &key, &c.key, &provider) {
                Ok(k) => keys.push(k),
                Err((field, msg)) => errors.push(join(&at, field), msg),
            }
        }
        let Ok(address) = l.address.parse::<SocketAddr>() else {
            continue;
        };
        if keys.len() != tls.certificates.len() {
            continue;
        }
        match SniResolver::new(keys).map(|r| server_config(r, &provider)) {
            Some(Ok(config)) => {
                set.by_listener.insert(address, Arc::new(config));
            }
            Some(Err(e)) => errors.push(at, format!("cannot build the TLS config: {e}")),
            // No certificate at all: validation reports it.
            None => {}
        }
    }
    if !set.files.is_empty() {
        set.digest = Some(digest.finalize().into());
    }
    set
}

/// A certificate chain with its key, and the DNS names it is for.
type Named = (Arc<CertifiedKey>, Vec<String>);

/// One certificate chain and its key, checked to belong together, with the chain's DNS names.
/// An error names the field (`cert` or `key`) it is about.
fn certified_key(
    cert: &[u8],
    cert_path: &str,
    key: &[u8],
    key_path: &str,
    provider: &CryptoProvider,
) -> Result<Named, (&'static str, String)> {
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ("cert", format!("{cert_path}: not a PEM certificate file: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(("cert", format!("{cert_path}: no CERTIFICATE block found")));
    };
    let names = dns_names(leaf).map_err(|e| ("cert", format!("{cert_path}: {e}")))?;
    let key =
        PrivateKeyDer::from_pem_slice(key).map_err(|e| ("key", format!("{key_path}: no private key found: {e}")))?;
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| ("key", format!("{key_path}: unsupported private key: {e}")))?;
    let ck = CertifiedKey::new(chain, signer);
    match ck.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok((Arc::new(ck), names)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => Err((
            "key",
            format!("{key_path}: does not match the certificate in {cert_path}"),
        )),
        Err(e) => Err(("cert", format!("{cert_path}: {e}"))),
    }
}

fn server_config(resolver: SniResolver, provider: &Arc<CryptoProvider>) -> Result<ServerConfig, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
    Ok(config)
}
