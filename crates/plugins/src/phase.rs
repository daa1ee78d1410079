//! The fixed order in which plugins run, whatever order the YAML lists them in.

/// Phases in the order they run (SPEC "Phase order").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Who may even talk to the gateway: ip-restriction, cors.
    Access,
    /// Who the caller is: key-auth, basic-auth, jwt-auth.
    Auth,
    /// What the caller may do: acl.
    Authz,
    /// How much: rate-limit, limit-conn, request-size-limit.
    Limit,
    /// Changes to the request: request-transformer.
    Rewrite,
    /// Where it goes or who answers: mock, redirect, traffic-split.
    Route,
    /// Answers from cache: proxy-cache.
    Cache,
    /// The upstream call itself (the proxy's own phase).
    Upstream,
    /// Changes to the response: response-transformer, compression.
    Response,
    /// After the response is sent.
    Log,
}
