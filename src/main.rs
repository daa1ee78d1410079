//! `portico`: the command line. `run` serves, `validate` checks a config, `version` prints.

use clap::{Parser, Subcommand};
use portico_config::ConfigErrors;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::signal::unix::{SignalKind, signal};

mod cluster;

#[derive(Parser)]
#[command(name = "portico", about = "An API gateway with built-in load balancing", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the gateway in the foreground.
    Run {
        #[arg(short, long, default_value = "portico.yaml")]
        config: PathBuf,
    },
    /// Check a config without starting anything.
    Validate {
        #[arg(short, long, default_value = "portico.yaml")]
        config: PathBuf,
    },
    /// Upload a declarative file's routes, upstreams and consumers to the cluster store.
    Push {
        #[arg(short, long)]
        config: PathBuf,
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("portico {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        // The same checks as a reload, without making metric series for a config that
        // will not serve here.
        Command::Validate { config } => {
            match portico_config::load_unvalidated(&config).and_then(|loaded| portico_proxy::check(&loaded.config)) {
                Ok(_) => {
                    println!("ok");
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    print_errors(&errors);
                    ExitCode::FAILURE
                }
            }
        }
        Command::Push { config, dry_run } => match portico_store::push(&config, dry_run, &mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("portico push: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run { config } => run(config),
    }
}

fn print_errors(errors: &ConfigErrors) {
    for e in &errors.0 {
        println!("{e}");
    }
}

fn run(path: PathBuf) -> ExitCode {
    init_tracing();
    portico_proxy::enable_active_checks();
    let (loaded, snapshot) = match portico_control::load_and_compile(&path) {
        Ok(ok) => ok,
        Err(errors) => {
            eprintln!("portico: invalid config {}:", path.display());
            for e in &errors.0 {
                eprintln!("  {e}");
            }
            return ExitCode::FAILURE;
        }
    };
    let gateway = loaded.config.gateway.clone();
    // Bound before the listeners, so a taken admin port stops `run` before it serves.
    let admin = match gateway
        .admin
        .as_ref()
        .map(|a| portico_admin::bind(&a.address))
        .transpose()
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("portico: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("portico: cannot start the control runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // etcd mode: the file gives the gateway section; routes and the rest come from etcd.
    let (snapshot, cluster) = match cluster::boot(&rt, &path, &loaded.config, snapshot) {
        Ok(ok) => ok,
        Err(code) => return code,
    };
    let running = match portico_proxy::start(&gateway, snapshot) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            eprintln!("portico: {e}");
            return ExitCode::FAILURE;
        }
    };
    let admin = match (admin, &gateway.admin) {
        (Some(bound), Some(cfg)) => match bound.serve(admin_api(cfg, &gateway, &path, &running, cluster.as_ref())) {
            Ok(a) => Some(a),
            Err(e) => {
                eprintln!("portico: {e}");
                running.shutdown();
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let reloader = Arc::new(portico_control::Reloader::new(path, running.clone(), gateway));
    let outcome = rt.block_on(control_loop(reloader, cluster));
    if let Some(admin) = admin {
        admin.shutdown();
    }
    running.shutdown();
    match outcome {
        Ok(()) => {
            tracing::info!(target: "portico", "stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("portico: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The admin API on the live snapshot of `running`; with the file store, writes are refused
/// (the config is the file); in etcd mode writes go to etcd and `/healthz` carries the
/// store's status.
fn admin_api(
    cfg: &portico_config::Admin,
    gateway: &portico_config::Gateway,
    path: &std::path::Path,
    running: &Arc<portico_proxy::Running>,
    cluster: Option<&cluster::Cluster>,
) -> portico_admin::Admin {
    let live = running.clone();
    let store = gateway.config_store.kind;
    let writer: Arc<dyn portico_admin::ConfigWriter> = match cluster {
        None => {
            let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
            Arc::new(portico_admin::FileStore { path })
        }
        Some(c) => Arc::new(c.node.writer()),
    };
    let health = portico_admin::Health::default();
    if let Some(c) = cluster {
        let h = health.clone();
        c.node
            .status()
            .subscribe(move |detail| h.set_from("config_store", detail));
    }
    let metrics = running.clone();
    portico_admin::Admin::new(&cfg.api_key, store, Arc::new(move || live.snapshot()), writer)
        .health(health)
        .metrics(Arc::new(move || portico_proxy::metrics::render(&metrics)))
}

/// Watches the file and the signals until SIGTERM or SIGINT.
async fn control_loop(
    reloader: Arc<portico_control::Reloader>,
    cluster: Option<cluster::Cluster>,
) -> std::io::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let node = cluster.as_ref().map(|c| c.node.clone());
    let watcher = match cluster {
        Some(c) => tokio::spawn(c.node.run(reloader.clone(), c.resume, stop_rx)),
        None => tokio::spawn(portico_control::watch_file(reloader.clone(), stop_rx)),
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                if let Some(n) = &node {
                    n.resync();
                    continue;
                }
                let r = reloader.clone();
                let _ = tokio::task::spawn_blocking(move || r.reload("SIGHUP")).await;
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!(target: "portico", "shutting down");
    let _ = stop_tx.send(true);
    let _ = watcher.await;
    Ok(())
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PORTICO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_env_filter(filter)
        .init();
}
