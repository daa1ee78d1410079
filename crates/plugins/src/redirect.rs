//! `redirect`: answers with a redirect to `to` (with `$uri`, `$request_uri`, `$host`), or to
//! the same URL over https when `https: true` (a request that came over https already goes on,
//! so one route can serve both listeners without a redirect loop).

use crate::body::Body;
use crate::ctx::Ctx;
use crate::phase::Phase;
use crate::plugin::{Flow, Plugin};
use crate::reply;
use http::{HeaderValue, Response, StatusCode, header, request};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectConfig {
    #[serde(default)]
    to: Option<String>,
    /// Default 301.
    #[serde(default = "moved")]
    status: u16,
    #[serde(default)]
    https: bool,
}

fn moved() -> u16 {
    301
}

/// One piece of a `to` template.
#[derive(Debug, PartialEq)]
enum Piece {
    Text(String),
    /// The path, without the query.
    Uri,
    /// The path and the query, as the client sent them.
    RequestUri,
    /// The request's host, without port.
    Host,
}

#[derive(Debug)]
pub struct Redirect {
    status: StatusCode,
    target: Vec<Piece>,
    /// `https: true`: only plain-HTTP requests are redirected.
    to_https: bool,
}

impl Redirect {
    pub fn build(c: RedirectConfig) -> Result<Self, String> {
        if ![301, 302, 303, 307, 308].contains(&c.status) {
            return Err(format!(
                "status: {} is not a redirect status (301, 302, 303, 307, 308)",
                c.status
            ));
        }
        let to_https = c.https;
        let target = match (c.to, c.https) {
            (Some(_), true) => return Err("set either to or https: true, not both".into()),
            (None, false) => return Err("set to (a URL or path) or https: true".into()),
            (None, true) => vec![Piece::Text("https://".into()), Piece::Host, Piece::RequestUri],
            (Some(to), false) => template(&to)?,
        };
        Ok(Self {
            status: StatusCode::from_u16(c.status).map_err(|e| e.to_string())?,
            target,
            to_https,
        })
    }
}

/// Splits `to` into text and `$uri` / `$request_uri` / `$host` variables.
fn template(to: &str) -> Result<Vec<Piece>, String> {
    if to.is_empty() || to.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(format!("to: {to:?} is not a valid URL or path"));
    }
    let mut pieces = Vec::new();
    let mut rest = to;
    while let Some(i) = rest.find('$') {
        if i > 0 {
            pieces.push(Piece::Text(rest[..i].to_owned()));
        }
        let var = &rest[i + 1..];
        let (piece, len) = if var.starts_with("request_uri") {
            (Piece::RequestUri, "request_uri".len())
        } else if var.starts_with("uri") {
            (Piece::Uri, "uri".len())
        } else if var.starts_with("host") {
            (Piece::Host, "host".len())
        } else {
            return Err(format!(
                "to: unknown variable in {to:?}; use $uri, $request_uri or $host"
            ));
        };
        pieces.push(piece);
        rest = &var[len..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(pieces)
}

impl Plugin for Redirect {
    fn phase(&self) -> Phase {
        Phase::Route
    }

    async fn on_request(&self, cx: &mut Ctx, req: &mut request::Parts) -> Flow {
        if self.to_https && cx.scheme == "https" {
            return Flow::Continue;
        }
        let mut location = String::with_capacity(64);
        for piece in &self.target {
            match piece {
                Piece::Text(t) => location.push_str(t),
                Piece::Uri => location.push_str(req.uri.path()),
                Piece::RequestUri => location.push_str(req.uri.path_and_query().map_or("/", |pq| pq.as_str())),
                Piece::Host => match cx.host_name() {
                    Some(h) => location.push_str(h),
                    None => {
                        let resp = reply::error(StatusCode::BAD_REQUEST, "no host to redirect to", &cx.request_id);
                        return Flow::Respond(resp);
                    }
                },
            }
        }
        let Ok(value) = HeaderValue::from_str(&location) else {
            return Flow::Respond(reply::error(
                StatusCode::BAD_REQUEST,
                "invalid redirect target",
                &cx.request_id,
            ));
        };
        let mut resp = Response::new(Body::Empty);
        *resp.status_mut() = self.status;
        resp.headers_mut().insert(header::LOCATION, value);
        Flow::Respond(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_split_on_variables() {
        assert_eq!(
            template("https://new.example.com$request_uri").expect("ok"),
            vec![Piece::Text("https://new.example.com".into()), Piece::RequestUri]
        );
        assert_eq!(template("/v2$uri?from=$host").expect("ok").len(), 4);
        assert!(template("/x/$nope").is_err());
        assert!(template("").is_err());
    }
}
