//! Picking a listener's certificate by SNI: exact names first, then `*.parent` wildcards (one
//! label), then the default (the first certificate listed). The maps are built once per config.

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::CertificateDer;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug)]
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the parent domain: `*.example.com` is stored as `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    /// `certs` in config order, each with the DNS names its certificate carries; an earlier
    /// certificate wins a name listed twice. `None` when there is no certificate.
    pub fn new(certs: Vec<(Arc<CertifiedKey>, Vec<String>)>) -> Option<Self> {
        let default = certs.first()?.0.clone();
        let (mut exact, mut wildcard) = (HashMap::new(), HashMap::new());
        for (key, names) in certs {
            for name in names {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                match name.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_owned()).or_insert_with(|| key.clone()),
                    None => exact.entry(name).or_insert_with(|| key.clone()),
                };
            }
        }
        Some(Self {
            exact,
            wildcard,
            default,
        })
    }

    /// The certificate for a server name (as the client sent it).
    pub fn pick(&self, name: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = name else {
            return &self.default;
        };
        let lower;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) || name.ends_with('.') {
            lower = name.trim_end_matches('.').to_ascii_lowercase();
            lower.as_str()
        } else {
            name
        };
        if let Some(k) = self.exact.get(name) {
            return k;
        }
        name.split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .unwrap_or(&self.default)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(hello.server_name()).clone())
    }
}

/// The DNS names (subject alternative names, wildcards included) of an end-entity certificate.
pub fn dns_names(cert: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    let parsed = webpki::EndEntityCert::try_from(cert).map_err(|e| format!("not a valid X.509 certificate: {e}"))?;
    Ok(parsed.valid_dns_names().map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::ring::sign::any_supported_type;
    use rustls_pki_types::PrivateKeyDer;

    fn key(tag: u8) -> Arc<CertifiedKey> {
        // The resolver never looks inside: any signing key with a marker certificate will do.
        let kp = rcgen::KeyPair::generate().expect("key");
        let der = PrivateKeyDer::try_from(kp.serialize_der()).expect("der");
        let signer = any_supported_type(&der).expect("signer");
        Arc::new(CertifiedKey::new(vec![CertificateDer::from(vec![tag])], signer))
    }

    fn tag(k: &Arc<CertifiedKey>) -> u8 {
        k.cert[0].as_ref()[0]
    }

    #[test]
    fn exact_then_wildcard_then_default() {
        let r = SniResolver::new(vec![
            (key(1), vec!["api.example.com".into()]),
            (key(2), vec!["*.example.com".into(), "other.test".into()]),
            (key(3), vec!["API.example.com".into()]),
        ])
        .expect("resolver");
        assert_eq!(tag(r.pick(Some("api.example.com"))), 1);
        assert_eq!(tag(r.pick(Some("API.Example.COM."))), 1);
        assert_eq!(tag(r.pick(Some("www.example.com"))), 2);
        assert_eq!(tag(r.pick(Some("other.test"))), 2);
        // A wildcard covers exactly one label.
        assert_eq!(tag(r.pick(Some("a.b.example.com"))), 1);
        assert_eq!(tag(r.pick(Some("example.com"))), 1);
        assert_eq!(tag(r.pick(None)), 1);
        assert_eq!(tag(r.pick(Some("unknown.test"))), 1);
    }

    #[test]
    fn no_certificate_no_resolver() {
        assert!(SniResolver::new(Vec::new()).is_none());
    }
}
