//! TLS to an upstream's nodes (`scheme: https | grpcs`): the rustls client config, built once
//! per upstream when the config is compiled, and the name each node's certificate must carry.
//!
//! Trust comes from `tls.ca` when given, else from the system's store (rustls-native-certs:
//! the operator's own CA bundle, with its updates and private CAs), else — on a system that
//! has none, a distroless image say — from the Mozilla roots compiled in (webpki-roots).

use portico_config::{ConfigErrors, UpstreamTls, error::join};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock};

/// What a connection to one node needs: the shared client config, the name to send and
/// verify, and a fingerprint of both so pooled connections are shared only by equal settings.
#[derive(Debug, Clone)]
pub struct NodeTls {
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
    /// Equal for equal settings (files' contents, verify, ALPN, name), across reloads too.
    pub fingerprint: u64,
}

/// An upstream's compiled TLS settings, before they are given a node's name.
#[derive(Debug, Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    sni: Option<ServerName<'static>>,
    digest: Sha256,
}

impl TlsClient {
    /// Reads and checks the files of `cfg` (none: system roots, no client certificate) and
    /// builds the client config, offering `alpn`. Errors are pushed at `location` (`…tls`).
    pub fn compile(
        cfg: Option<&UpstreamTls>,
        alpn: &[&[u8]],
        location: &str,
        errors: &mut ConfigErrors,
    ) -> Option<TlsClient> {
        let default = UpstreamTls {
            ca: None,
            cert: None,
            key: None,
            sni: None,
            verify: true,
        };
        let cfg = cfg.unwrap_or(&default);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut digest = Sha256::new();
        let before = errors.0.len();

        let roots = match &cfg.ca {
            Some(path) => {
                let bytes = read(path, &join(location, "ca"), errors);
                digest.update(b"ca\0");
                digest.update(bytes.as_deref().unwrap_or_default());
                bytes.and_then(|b| ca_roots(&b, path, &join(location, "ca"), errors))
            }
            None => {
                digest.update(b"system\0");
                Some(system_roots())
            }
        };
        let client_auth = match (&cfg.cert, &cfg.key) {
            (Some(cert), Some(key)) => {
                let chain = read(cert, &join(location, "cert"), errors).and_then(|b| {
                    digest.update(b"cert\0");
                    digest.update(&b);
                    cert_chain(&b, cert, &join(location, "cert"), errors)
                });
                let key = read(key, &join(location, "key"), errors).and_then(|b| {
                    digest.update(b"key\0");
                    digest.update(&b);
                    match PrivateKeyDer::from_pem_slice(&b) {
                        Ok(k) => Some(k),
                        Err(e) => {
                            errors.push(join(location, "key"), format!("no private key in {key:?}: {e}"));
                            None
                        }
                    }
                });
                chain.zip(key)
            }
            _ => None,
        };
        let sni = cfg
            .sni
            .as_deref()
            .and_then(|s| match ServerName::try_from(s.to_owned()) {
                Ok(n) => Some(n),
                Err(_) => {
                    errors.push(
                        join(location, "sni"),
                        format!("{s:?} is not a DNS name or an IP address"),
                    );
                    None
                }
            });
        if errors.0.len() != before {
            return None;
        }

        let builder = match ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()
        {
            Ok(b) => b,
            Err(e) => {
                errors.push(location, format!("cannot set up TLS: {e}"));
                return None;
            }
        };
        let builder = if cfg.verify {
            builder.with_root_certificates(roots?)
        } else {
            digest.update(b"noverify\0");
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.signature_verification_algorithms)))
        };
        let mut config = match client_auth {
            Some((chain, key)) => match builder.with_client_auth_cert(chain, key) {
                Ok(c) => c,
                Err(e) => {
                    errors.push(join(location, "key"), format!("does not fit the certificate: {e}"));
                    return None;
                }
            },
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        for p in alpn {
            digest.update(b"alpn\0");
            digest.update(p);
        }
        Some(TlsClient {
            config: Arc::new(config),
            sni,
            digest,
        })
    }

    /// The settings for a node: its certificate must name `sni` when configured, else
    /// `default_name` (the upstream's Host or the node's host, without a port).
    pub fn for_node(&self, default_name: &str) -> Result<NodeTls, String> {
        let name = match &self.sni {
            Some(n) => n.clone(),
            None => ServerName::try_from(host_part(default_name).to_owned())
                .map_err(|_| format!("{default_name:?} is not usable as a TLS server name; set tls.sni"))?,
        };
        let mut digest = self.digest.clone();
        digest.update(b"name\0");
        digest.update(name.to_str().as_bytes());
        let sum = digest.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&sum[..8]);
        Ok(NodeTls {
            config: self.config.clone(),
            name,
            fingerprint: u64::from_le_bytes(first),
        })
    }
}

/// `host` of `host:port`, `[v6]:port` or a bare host.
fn host_part(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

fn read(path: &str, at: &str, errors: &mut ConfigErrors) -> Option<Vec<u8>> {
    match std::fs::read(path) {
        Ok(b) => Some(b),
        Err(e) => {
            errors.push(at, format!("cannot read {path:?}: {e}"));
            None
        }
    }
}

fn cert_chain(pem: &[u8], path: &str, at: &str, errors: &mut ConfigErrors) -> Option<Vec<CertificateDer<'static>>> {
    match CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>() {
        Ok(certs) if !certs.is_empty() => Some(certs),
        Ok(_) => {
            errors.push(at, format!("no PEM certificate in {path:?}"));
            None
        }
        Err(e) => {
            errors.push(at, format!("invalid PEM in {path:?}: {e}"));
            None
        }
    }
}

fn ca_roots(pem: &[u8], path: &str, at: &str, errors: &mut ConfigErrors) -> Option<Arc<RootCertStore>> {
    let certs = cert_chain(pem, path, at, errors)?;
    let mut roots = RootCertStore::empty();
    for (i, c) in certs.into_iter().enumerate() {
        if let Err(e) = roots.add(c) {
            errors.push(at, format!("certificate {} in {path:?} is not a usable CA: {e}", i + 1));
            return None;
        }
    }
    Some(Arc::new(roots))
}

/// The system's trust store, read once per process; the compiled-in Mozilla roots when the
/// system has none.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(target: "portico::tls", error = %e, "reading the system's CA certificates");
            }
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!(
                    target: "portico::tls",
                    "no CA certificates in the system store; using the compiled-in Mozilla roots"
                );
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            Arc::new(roots)
        })
        .clone()
}

/// `verify: false`: any certificate is accepted, but the handshake's signatures are still
/// checked (the peer must hold the key of the certificate it sent).
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_part_drops_the_port() {
        assert_eq!(host_part("api.internal:8443"), "api.internal");
        assert_eq!(host_part("127.0.0.1:443"), "127.0.0.1");
        assert_eq!(host_part("[::1]:443"), "::1");
        assert_eq!(host_part("api.internal"), "api.internal");
    }

    #[test]
    fn missing_files_are_located() {
        let cfg = UpstreamTls {
            ca: Some("/nonexistent/ca.pem".into()),
            cert: Some("/nonexistent/c.pem".into()),
            key: Some("/nonexistent/k.pem".into()),
            sni: None,
            verify: true,
        };
        let mut errors = ConfigErrors::default();
        assert!(TlsClient::compile(Some(&cfg), &[], "upstreams[0].tls", &mut errors).is_none());
        let text = errors.to_string();
        for at in [
            "upstreams[0].tls.ca: cannot read",
            "upstreams[0].tls.cert: cannot read",
            "upstreams[0].tls.key: cannot read",
        ] {
            assert!(text.contains(at), "{text}");
        }
    }

    #[test]
    fn garbage_is_not_a_ca() {
        let dir = std::env::temp_dir().join(format!("portico-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let cfg = UpstreamTls {
            ca: Some(path.display().to_string()),
            cert: None,
            key: None,
            sni: None,
            verify: true,
        };
        let mut errors = ConfigErrors::default();
        assert!(TlsClient::compile(Some(&cfg), &[], "u.tls", &mut errors).is_none());
        assert!(
            errors.to_string().starts_with("u.tls.ca: no PEM certificate"),
            "{errors}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn equal_settings_share_a_fingerprint_and_names_do_not() {
        let mut errors = ConfigErrors::default();
        let a = TlsClient::compile(None, &[b"http/1.1"], "a", &mut errors).unwrap();
        let b = TlsClient::compile(None, &[b"http/1.1"], "b", &mut errors).unwrap();
        let h2 = TlsClient::compile(None, &[b"h2"], "c", &mut errors).unwrap();
        let fp = |c: &TlsClient, n: &str| c.for_node(n).unwrap().fingerprint;
        assert_eq!(fp(&a, "x.internal:443"), fp(&b, "x.internal:8443"));
        assert_ne!(fp(&a, "x.internal:443"), fp(&a, "y.internal:443"));
        assert_ne!(fp(&a, "x.internal:443"), fp(&h2, "x.internal:443"));
        assert!(errors.is_empty());
    }
}
