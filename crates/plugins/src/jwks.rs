//! Keys from a JWKS endpoint for `jwt-auth`'s `jwks_uri` mode, kept fresh by a background task.
//!
//! Requests only read the current key set (one atomic load). A thread of its own fetches the set
//! at start, every [`PERIOD`], and when a request meets an unknown `kid` — at most once every
//! [`MIN_INTERVAL`]. A failed fetch keeps the old keys and is retried; no request ever waits
//! for the network. The thread ends when the plugin is dropped (a reload replaced it).

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use portico_upstream::tls::{NodeTls, TlsClient};
use rustc_hash::FxHashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often the set is fetched when nothing asks.
const PERIOD: Duration = Duration::from_secs(300);
/// After a failure, the next try.
const RETRY: Duration = Duration::from_secs(5);
/// Unknown `kid`s trigger at most one fetch per this interval.
const MIN_INTERVAL: Duration = Duration::from_secs(3);
/// One fetch, connect to last byte.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Larger documents are refused.
const MAX_BYTES: usize = 1024 * 1024;

/// One verification key and the one algorithm it may be used with.
#[derive(Clone)]
pub struct Key {
    pub key: DecodingKey,
    pub alg: Algorithm,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({:?})", self.alg)
    }
}

/// The keys of one JWKS document.
#[derive(Debug, Default)]
pub struct KeySet {
    by_kid: FxHashMap<String, Key>,
    /// Keys without a `kid`.
    unnamed: Vec<Key>,
}

impl KeySet {
    /// The key for `kid`; a token without `kid` may use the set's only key.
    pub fn find(&self, kid: Option<&str>) -> Option<&Key> {
        match kid {
            Some(k) => self.by_kid.get(k),
            None if self.by_kid.len() + self.unnamed.len() == 1 => {
                self.unnamed.first().or_else(|| self.by_kid.values().next())
            }
            None => None,
        }
    }

    /// Every signing key of `set` this gateway can use; the others are skipped.
    pub fn from_set(set: &JwkSet) -> Self {
        let mut out = KeySet::default();
        for jwk in &set.keys {
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                continue;
            }
            let (Some(alg), Ok(key)) = (algorithm_of(jwk), DecodingKey::from_jwk(jwk)) else {
                continue;
            };
            if key.family() != alg.family() {
                continue;
            }
            let k = Key { key, alg };
            match &jwk.common.key_id {
                Some(kid) => {
                    out.by_kid.insert(kid.clone(), k);
                }
                None => out.unnamed.push(k),
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.by_kid.len() + self.unnamed.len()
    }
}

/// A JWK's algorithm: its `alg`, else the usual one for its key type. Symmetric keys need an `alg`.
pub fn algorithm_of(jwk: &Jwk) -> Option<Algorithm> {
    if let Some(a) = jwk.common.key_algorithm {
        return Algorithm::try_from(a).ok();
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => None,
        },
        AlgorithmParameters::OctetKeyPair(_) => Some(Algorithm::EdDSA),
        _ => None,
    }
}

/// The current keys of one `jwks_uri`, and the way to ask for fresh ones.
#[derive(Debug)]
pub struct Jwks {
    keys: Arc<ArcSwap<KeySet>>,
    refresh: mpsc::Sender<()>,
}

impl Jwks {
    /// Checks `uri` and starts the fetching thread.
    pub fn start(uri: &str) -> Result<Self, String> {
        let parsed: Uri = uri.parse().map_err(|_| format!("jwks_uri: {uri:?} is not a URL"))?;
        let Some(authority) = parsed.authority().filter(|a| !a.host().is_empty()) else {
            return Err(format!("jwks_uri: {uri:?} has no host"));
        };
        // https: verified against the system's roots, as an upstream without `tls.ca` is.
        let tls = match parsed.scheme_str() {
            Some("http") => None,
            Some("https") => {
                let mut errors = portico_config::ConfigErrors::default();
                let client = TlsClient::compile(None, &[b"http/1.1"], "jwks_uri", &mut errors)
                    .ok_or_else(|| errors.to_string())?;
                Some(
                    client
                        .for_node(authority.as_str())
                        .map_err(|e| format!("jwks_uri: {e}"))?,
                )
            }
            _ => return Err(format!("jwks_uri: {uri:?} must start with http:// or https://")),
        };
        let keys = Arc::new(ArcSwap::from_pointee(KeySet::default()));
        let (refresh, rx) = mpsc::channel(1);
        let shared = keys.clone();
        std::thread::Builder::new()
            .name("jwks-fetch".into())
            .spawn(move || fetch_loop(parsed, tls, shared, rx))
            .map_err(|e| format!("jwks_uri: cannot start the fetcher: {e}"))?;
        Ok(Self { keys, refresh })
    }

    /// The key set as last fetched.
    pub fn keys(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.keys.load()
    }

    /// Asks the fetcher for a new set (it decides when); never waits.
    pub fn request_refresh(&self) {
        let _ = self.refresh.try_send(());
    }
}

fn fetch_loop(uri: Uri, tls: Option<NodeTls>, keys: Arc<ArcSwap<KeySet>>, mut rx: mpsc::Receiver<()>) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        tracing::error!(target: "portico::jwks", "cannot start the JWKS fetcher runtime");
        return;
    };
    rt.block_on(async move {
        loop {
            let wait = match tokio::time::timeout(TIMEOUT, fetch(&uri, tls.as_ref())).await {
                Ok(Ok(set)) => {
                    tracing::debug!(target: "portico::jwks", uri = %uri, keys = set.len(), "JWKS fetched");
                    keys.store(Arc::new(set));
                    PERIOD
                }
                Ok(Err(e)) => {
                    tracing::warn!(target: "portico::jwks", uri = %uri, error = %e, "JWKS fetch failed; keeping the old keys");
                    RETRY
                }
                Err(_) => {
                    tracing::warn!(target: "portico::jwks", uri = %uri, "JWKS fetch timed out; keeping the old keys");
                    RETRY
                }
            };
            let fetched = tokio::time::Instant::now();
            let asked = tokio::select! {
                r = rx.recv() => match r { Some(()) => true, None => return },
                _ = tokio::time::sleep(wait) => false,
            };
            if asked {
                // Unknown kids come in bursts: one fetch per interval answers them all. The
                // first one after a quiet spell is fetched for at once.
                tokio::time::sleep_until(fetched + MIN_INTERVAL).await;
                while rx.try_recv().is_ok() {}
            }
        }
    });
}

async fn fetch(uri: &Uri, tls: Option<&NodeTls>) -> Result<KeySet, String> {
    let host = uri.host().ok_or("no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if tls.is_some() { 443 } else { 80 });
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    match tls {
        None => get(stream, uri, host).await,
        Some(tls) => {
            let stream = tokio_rustls::TlsConnector::from(tls.config.clone())
                .connect(tls.name.clone(), stream)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            get(stream, uri, host).await
        }
    }
}

/// `GET uri` over `io` and the key set in its answer.
async fn get<IO>(io: IO, uri: &Uri, host: &str) -> Result<KeySet, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let authority = uri.authority().map_or(host, |a| a.as_str());
    let req = Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(header::HOST, authority)
        .header(header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| format!("request: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("status {}", resp.status()));
    }
    let body = Limited::new(resp.into_body(), MAX_BYTES)
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    let set: JwkSet = serde_json::from_slice(&body).map_err(|e| format!("not a JWKS document: {e}"))?;
    Ok(KeySet::from_set(&set))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_by_kid_and_encryption_keys_skipped() {
        let set: JwkSet = serde_json::from_str(
            r#"{"keys":[
              {"kty":"EC","crv":"P-256","kid":"ec","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"},
              {"kty":"oct","kid":"sym","k":"c2VjcmV0"},
              {"kty":"EC","crv":"P-256","kid":"enc","use":"enc","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}
            ]}"#,
        )
        .expect("jwks");
        let keys = KeySet::from_set(&set);
        assert_eq!(keys.len(), 1);
        assert_eq!(keys.find(Some("ec")).map(|k| k.alg), Some(Algorithm::ES256));
        assert!(keys.find(Some("sym")).is_none());
        assert!(keys.find(Some("enc")).is_none());
        assert_eq!(keys.find(None).map(|k| k.alg), Some(Algorithm::ES256));
    }

    #[test]
    fn only_http_and_https_uris_are_taken() {
        assert!(Jwks::start("https:///jwks").is_err());
        assert!(Jwks::start("ftp://idp.example/jwks").is_err());
        assert!(Jwks::start("not a uri").is_err());
    }
}
