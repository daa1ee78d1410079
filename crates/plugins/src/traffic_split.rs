//! `traffic-split`: sends a request to another upstream than the route's: by rules on
//! headers, cookies and query (canary), or by weights (blue-green, gradual rollout).

use crate::ctx::Ctx;
use crate::phase::Phase;
use crate::plugin::{BuildEnv, Flow, Plugin};
use http::{HeaderName, HeaderValue, header, request};
use portico_upstream::{RoundRobin, Upstream};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficSplitConfig {
    /// Tried in order; the first whose every condition holds picks the upstream.
    #[serde(default)]
    rules: Vec<RuleConfig>,
    /// When no rule matched: upstreams by weight; an entry without `upstream` is the route's own.
    #[serde(default)]
    weighted: Vec<WeightedConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleConfig {
    #[serde(rename = "match")]
    matches: MatchConfig,
    upstream: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchConfig {
    #[serde(default)]
    header: BTreeMap<String, String>,
    #[serde(default)]
    cookie: BTreeMap<String, String>,
    #[serde(default)]
    query: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WeightedConfig {
    #[serde(default)]
    upstream: Option<String>,
    weight: u32,
}

#[derive(Debug)]
struct Rule {
    headers: Vec<(HeaderName, HeaderValue)>,
    cookies: Vec<(String, String)>,
    query: Vec<(String, String)>,
    upstream: Arc<Upstream>,
}

#[derive(Debug)]
pub struct TrafficSplit {
    rules: Vec<Rule>,
    /// `None`: the route's own upstream.
    weighted: Vec<Option<Arc<Upstream>>>,
    /// Smooth weighted round robin over `weighted`: exact shares over every cycle.
    schedule: Option<RoundRobin>,
}

impl TrafficSplit {
    pub fn build(c: TrafficSplitConfig, env: &BuildEnv) -> Result<Self, String> {
        if c.rules.is_empty() && c.weighted.is_empty() {
            return Err("set rules, weighted, or both".into());
        }
        let find = |at: String, id: &str| {
            env.upstreams
                .get(id)
                .cloned()
                .ok_or_else(|| format!("{at}: unknown upstream {id:?}"))
        };
        let mut rules = Vec::with_capacity(c.rules.len());
        for (i, r) in c.rules.into_iter().enumerate() {
            let m = r.matches;
            if m.header.is_empty() && m.cookie.is_empty() && m.query.is_empty() {
                return Err(format!(
                    "rules[{i}].match: give at least one header, cookie or query condition"
                ));
            }
            let headers = m
                .header
                .iter()
                .map(|(n, v)| {
                    let name = HeaderName::from_bytes(n.as_bytes())
                        .map_err(|_| format!("rules[{i}].match.header: invalid name {n:?}"))?;
                    let value =
                        HeaderValue::from_str(v).map_err(|_| format!("rules[{i}].match.header.{n}: invalid value"))?;
                    Ok((name, value))
                })
                .collect::<Result<_, String>>()?;
            rules.push(Rule {
                headers,
                cookies: m.cookie.into_iter().collect(),
                query: m.query.into_iter().collect(),
                upstream: find(format!("rules[{i}].upstream"), &r.upstream)?,
            });
        }
        let mut weighted = Vec::with_capacity(c.weighted.len());
        for (i, w) in c.weighted.iter().enumerate() {
            weighted.push(match &w.upstream {
                Some(id) => Some(find(format!("weighted[{i}].upstream"), id)?),
                None => None,
            });
        }
        let weights: Vec<u32> = c.weighted.iter().map(|w| w.weight).collect();
        if !weights.is_empty() && weights.iter().all(|&w| w == 0) {
            return Err("weighted: at least one weight must be more than 0".into());
        }
        let schedule = (!weights.is_empty()).then(|| RoundRobin::new(&weights));
        Ok(Self {
            rules,
            weighted,
            schedule,
        })
    }
}

impl Rule {
    fn matches(&self, req: &request::Parts) -> bool {
        self.headers
            .iter()
            .all(|(n, v)| req.headers.get_all(n).iter().any(|x| x == v))
            && self.cookies.iter().all(|(n, v)| cookie(req, n) == Some(v.as_str()))
            && self.query.iter().all(|(n, v)| {
                req.uri
                    .query()
                    .is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, x)| k == *n && x == *v))
            })
    }
}

fn cookie<'a>(req: &'a request::Parts, name: &str) -> Option<&'a str> {
    req.headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl Plugin for TrafficSplit {
    fn phase(&self) -> Phase {
        Phase::Route
    }

    async fn on_request(&self, cx: &mut Ctx, req: &mut request::Parts) -> Flow {
        if let Some(rule) = self.rules.iter().find(|r| r.matches(req)) {
            cx.upstream = Some(rule.upstream.clone());
        } else if let Some(i) = self.schedule.as_ref().and_then(|s| s.next(|_| true)) {
            cx.upstream = self.weighted[i].clone();
        }
        Flow::Continue
    }
}
