//! The three kinds of resource the admin API reads and writes, and how each is named.

use portico_config::Config;

/// A resource kind: its URL segment is its config section's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Routes,
    Upstreams,
    Consumers,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Routes, Kind::Upstreams, Kind::Consumers];

    /// `routes`, `upstreams`, `consumers`: the config section and the URL segment.
    pub fn section(self) -> &'static str {
        match self {
            Kind::Routes => "routes",
            Kind::Upstreams => "upstreams",
            Kind::Consumers => "consumers",
        }
    }

    /// The field that names one item: `id`, or `username` for consumers.
    pub fn id_field(self) -> &'static str {
        match self {
            Kind::Consumers => "username",
            _ => "id",
        }
    }

    /// One item, for messages: `route`, `upstream`, `consumer`.
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Routes => "route",
            Kind::Upstreams => "upstream",
            Kind::Consumers => "consumer",
        }
    }

    pub fn from_section(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.section() == s)
    }

    /// The ids of this kind in `config`, in config order.
    pub fn ids(self, config: &Config) -> Vec<&str> {
        match self {
            Kind::Routes => config.routes.iter().map(|r| r.id.as_str()).collect(),
            Kind::Upstreams => config.upstreams.iter().map(|u| u.id.as_str()).collect(),
            Kind::Consumers => config.consumers.iter().map(|c| c.username.as_str()).collect(),
        }
    }

    /// Where item `id` sits in `config`'s section.
    pub fn position(self, config: &Config, id: &str) -> Option<usize> {
        self.ids(config).iter().position(|i| *i == id)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.section())
    }
}
