//! `ip-restriction`: lets a client through by the address the gateway saw it connect from
//! (`allow`, `deny`: CIDRs or single addresses, IPv4 and IPv6).

use crate::ctx::Ctx;
use crate::phase::Phase;
use crate::plugin::{Flow, Plugin};
use crate::reply;
use http::{StatusCode, request};
use ipnet::IpNet;
use serde::Deserialize;
use std::net::IpAddr;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpRestrictionConfig {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
}

#[derive(Debug)]
pub struct IpRestriction {
    allow: Box<[IpNet]>,
    deny: Box<[IpNet]>,
}

fn nets(list: &[String], field: &str) -> Result<Box<[IpNet]>, String> {
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| format!("{field}[{i}]: {s:?} is not a CIDR (10.0.0.0/8, 2001:db8::/32) or an address"))
        })
        .collect()
}

impl IpRestriction {
    pub fn build(c: IpRestrictionConfig) -> Result<Self, String> {
        if c.allow.is_empty() && c.deny.is_empty() {
            return Err("set allow, deny or both".into());
        }
        Ok(Self {
            allow: nets(&c.allow, "allow")?,
            deny: nets(&c.deny, "deny")?,
        })
    }

    /// A denied address is refused; with an `allow` list, so is one outside it.
    fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        !self.deny.iter().any(|n| n.contains(&ip))
            && (self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip)))
    }
}

impl Plugin for IpRestriction {
    fn phase(&self) -> Phase {
        Phase::Access
    }

    async fn on_request(&self, cx: &mut Ctx, _req: &mut request::Parts) -> Flow {
        if self.allows(cx.client_ip) {
            Flow::Continue
        } else {
            Flow::Respond(reply::error(
                StatusCode::FORBIDDEN,
                "IP address not allowed",
                &cx.request_id,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(yaml: &str) -> Result<IpRestriction, String> {
        IpRestriction::build(serde_yaml::from_str(yaml).expect("yaml"))
    }

    #[test]
    fn cidrs_match_v4_v6_and_mapped() {
        let r = build("{ allow: [10.0.0.0/8, '2001:db8::/32', 192.168.1.7], deny: [10.1.0.0/16] }").expect("builds");
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(r.allows(ip("10.2.3.4")));
        assert!(!r.allows(ip("10.1.3.4")));
        assert!(r.allows(ip("192.168.1.7")));
        assert!(!r.allows(ip("192.168.1.8")));
        assert!(r.allows(ip("2001:db8::1")));
        assert!(!r.allows(ip("2001:db9::1")));
        assert!(r.allows(ip("::ffff:10.2.3.4")));
        assert!(!r.allows(ip("127.0.0.1")));
    }

    #[test]
    fn bad_lists_are_refused() {
        assert!(build("{}").is_err());
        let e = build("{ deny: [10.0.0.0/8, nope] }").expect_err("refused");
        assert!(e.starts_with("deny[1]:"), "{e}");
        assert!(build("{ allow: [10.0.0.0/33] }").is_err());
    }
}
