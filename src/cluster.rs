//! `portico run` in etcd mode: the local file gives the `gateway` section (listeners,
//! workers, the store's address); routes, upstreams, consumers and global plugins come from
//! etcd (or, while etcd is down at start, from the local cache of the last applied config).

use portico_config::Config;
use portico_proxy::Snapshot;
use portico_store::{Node, Resume};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// A node following its store, handed to the control loop.
pub struct Cluster {
    pub node: Arc<Node>,
    pub resume: Resume,
}

/// In file mode, `snapshot` as it is and no cluster; in etcd mode, the snapshot to start
/// serving (from etcd or the cache). An error has been printed when `Err`.
pub fn boot(
    rt: &tokio::runtime::Runtime,
    path: &Path,
    file: &Config,
    snapshot: Snapshot,
) -> Result<(Snapshot, Option<Cluster>), ExitCode> {
    let Some(node) = Node::for_file(path, &file.gateway) else {
        return Ok((snapshot, None));
    };
    if !(file.routes.is_empty()
        && file.upstreams.is_empty()
        && file.consumers.is_empty()
        && file.global_plugins.is_empty())
    {
        tracing::warn!(
            target: "portico",
            "{}: routes, upstreams, consumers and global_plugins are not served in etcd mode; \
             `portico push -c {}` uploads them",
            path.display(),
            path.display()
        );
    }
    match rt.block_on(node.boot()) {
        Ok(boot) => Ok((
            boot.snapshot,
            Some(Cluster {
                node: Arc::new(node),
                resume: boot.resume,
            }),
        )),
        Err(errors) => {
            eprintln!("portico: nothing to serve:");
            for e in &errors.0 {
                eprintln!("  {e}");
            }
            Err(ExitCode::FAILURE)
        }
    }
}
