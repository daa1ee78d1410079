//! Certificates made for one test (rcgen) and an HTTPS upstream server (tokio-rustls + hyper)
//! that echoes, as JSON, what it received and what it saw of the TLS handshake: the SNI name
//! and the client certificate's common name.
//!
//! ```text
//! let ca = Ca::new("upstream CA");
//! let leaf = ca.issue("upstream", &["127.0.0.1", "localhost"]);
//! let up = TlsUpstream::start(&leaf, None).await;           // Some(&client_ca): mTLS required
//! let ca_file = ca.write(dir, "ca");                          // PEM file for `tls.ca`
//! ```

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde_json::json;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// The crypto provider every test TLS endpoint uses (ring, as the gateway does).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate authority of the test's own.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate issued by a [`Ca`], with its key, as PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = dn(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `names` (DNS names or IP addresses) with common name `cn`.
    pub fn issue(&self, cn: &str, names: &[&str]) -> Leaf {
        let mut params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name = dn(cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes the CA certificate to `dir/name.pem`.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(format!("{name}.pem"));
        std::fs::write(&path, self.pem()).unwrap();
        path
    }

    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        roots
    }
}

impl Leaf {
    /// Writes `dir/name.pem` and `dir/name.key`; returns both paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }

    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap()
    }

    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap()
    }

    /// A server config presenting this certificate, requiring a client certificate from
    /// `client_ca` when given, offering `alpn`.
    pub fn server_config(&self, client_ca: Option<&Ca>, alpn: &[&[u8]]) -> ServerConfig {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            Some(ca) => builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(Arc::new(ca.roots()), provider())
                    .build()
                    .unwrap(),
            ),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(self.chain(), self.key()).unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// An HTTPS/1.1 echo server. Each response is JSON: `path`, `host`, `sni` (the name the
/// client sent, or null), `client_cn` (the client certificate's common name, or null),
/// `connection` (a number per TLS connection), `headers`.
pub struct TlsUpstream {
    addr: SocketAddr,
    state: Arc<TlsState>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct TlsState {
    handshakes: AtomicUsize,
    failed: AtomicUsize,
    errors: Mutex<Vec<String>>,
}

impl TlsUpstream {
    /// Serves `leaf` on a free loopback port; with `client_ca`, a client certificate it
    /// issued is required.
    pub async fn start(leaf: &Leaf, client_ca: Option<&Ca>) -> TlsUpstream {
        Self::start_with(leaf, client_ca, None).await
    }

    /// A server that answers every request with `body` (JSON) instead of the echo.
    pub async fn serving(leaf: &Leaf, body: &str) -> TlsUpstream {
        Self::start_with(leaf, None, Some(body.to_owned())).await
    }

    async fn start_with(leaf: &Leaf, client_ca: Option<&Ca>, fixed: Option<String>) -> TlsUpstream {
        let acceptor = TlsAcceptor::from(Arc::new(leaf.server_config(client_ca, &[b"http/1.1"])));
        let listener = crate::support::ports::bound_listener();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(TlsState::default());
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let (acceptor, st, fixed) = (acceptor.clone(), st.clone(), fixed.clone());
                tokio::spawn(async move {
                    let tls = match acceptor.accept(tcp).await {
                        Ok(t) => t,
                        Err(e) => {
                            st.failed.fetch_add(1, Ordering::SeqCst);
                            st.errors.lock().unwrap().push(e.to_string());
                            return;
                        }
                    };
                    let n = st.handshakes.fetch_add(1, Ordering::SeqCst) + 1;
                    let conn = tls.get_ref().1;
                    let sni = conn.server_name().map(str::to_owned);
                    let client_cn = conn.peer_certificates().and_then(|c| c.first()).map(common_name);
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let fixed = fixed.clone();
                        let headers: serde_json::Map<String, serde_json::Value> = req
                            .headers()
                            .iter()
                            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or_default())))
                            .collect();
                        let body = json!({
                            "path": req.uri().path(),
                            "host": req.headers().get("host").and_then(|h| h.to_str().ok()),
                            "sni": sni,
                            "client_cn": client_cn,
                            "connection": n,
                            "headers": headers,
                        });
                        async move {
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(fixed.unwrap_or_else(|| body.to_string()))))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(tls), svc).await;
                });
            }
        });
        TlsUpstream { addr, state, task }
    }

    /// `127.0.0.1:PORT`, as a config's node address.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Completed TLS handshakes.
    pub fn handshakes(&self) -> usize {
        self.state.handshakes.load(Ordering::SeqCst)
    }

    /// Failed TLS handshakes, with what the server saw of each.
    pub fn failures(&self) -> Vec<String> {
        self.state.errors.lock().unwrap().clone()
    }
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The subject common name of a DER certificate (for the echo; x509 parsing is not needed:
/// rcgen writes the CN as a UTF8String right after its OID).
fn common_name(der: &CertificateDer<'_>) -> String {
    const CN_OID: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];
    let b = der.as_ref();
    // The last CN in the certificate is the subject's (the issuer's comes first).
    let Some(at) = b.windows(CN_OID.len()).rposition(|w| w == CN_OID) else {
        return String::new();
    };
    let rest = &b[at + CN_OID.len()..];
    let len = rest.get(1).copied().unwrap_or(0) as usize;
    String::from_utf8_lossy(rest.get(2..2 + len).unwrap_or_default()).into_owned()
}
