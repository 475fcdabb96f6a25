//! The running daemon: engine, signals, reload, drain.

use std::hash::{BuildHasher, Hasher};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvs_proxy::{Engine, EngineConfig};
use tokio::signal::unix::{SignalKind, signal};

use crate::{Args, load};

/// Randomness for the director's hash key and seed, from the standard
/// library's per-process random keys.
fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(rvs_proxy::now_ms());
    h.finish()
}

/// Starts the control API on its Unix socket (`--control`, `[control]
/// socket`, or the default path for this user), serving the engine until
/// the process exits. A socket that cannot be bound is an error: a daemon
/// nobody can manage should not run.
pub fn start_control(
    control: Arc<dyn rvs_api::Control>,
    path: Option<&std::path::Path>,
) -> Result<std::path::PathBuf, String> {
    let path = path.map_or_else(
        rvs_control::default_socket_path,
        std::path::Path::to_path_buf,
    );
    let listener =
        rvs_control::bind(&path).map_err(|e| format!("control socket {}: {e}", path.display()))?;
    tracing::info!(path = %path.display(), "control API listening");
    tokio::spawn(rvs_control::serve(
        listener,
        control,
        std::future::pending(),
    ));
    Ok(path)
}

/// Builds the engine for a loaded configuration (inside a runtime).
pub fn engine_for(cfg: &rvs_config::Config) -> Engine {
    let e = Engine::new(EngineConfig {
        proxy: cfg.proxy.clone(),
        director: cfg.director_config(
            [random_u64(), random_u64(), random_u64(), random_u64()],
            random_u64(),
        ),
        timeouts: cfg.timeouts(),
        tick: Duration::from_secs(1),
    });
    for s in &cfg.services {
        e.set_proxy_protocol(s.config.key, s.proxy_protocol);
    }
    e
}

pub fn run(args: Args) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rvsd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async_run(args))
}

async fn async_run(args: Args) -> ExitCode {
    let (loaded, demo) = if args.demo {
        match crate::demo::start().await {
            Ok(x) => (x.0, Some(x.1)),
            Err(e) => {
                eprintln!("rvsd: demo: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        match load(&args) {
            Ok(l) => (l, None),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        }
    };
    let engine = engine_for(&loaded.config);
    let health = match crate::health::Health::start(
        engine.clone(),
        &loaded.config.health,
        loaded.services.clone(),
        crate::health::specs_of(&loaded.config),
        random_u64(),
    ) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("rvsd: {e}");
            return ExitCode::from(2);
        }
    };
    let control_path = args
        .control
        .clone()
        .map(std::path::PathBuf::from)
        .or_else(|| loaded.config.control.socket.clone());
    let control_path = match start_control(Arc::new(health.clone()), control_path.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rvsd: {e}");
            return ExitCode::from(2);
        }
    };
    let metrics = match args.metrics_listen(&loaded.config.metrics) {
        Some(listen) => match crate::metrics::start(engine.clone(), Some(health.clone()), listen) {
            Ok(a) => Some(a),
            Err(e) => {
                eprintln!("rvsd: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    tracing::info!(services = loaded.services.len(), "rvsd running");
    if let Some(backends) = demo {
        println!(
            "{}",
            crate::demo::banner(
                &backends,
                &control_path,
                &rvs_control::default_socket_path(),
                metrics,
            )
        );
    }
    let grace = Duration::from_secs(loaded.config.proxy.drain_grace_s);
    let (mut term, mut hup, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        _ => {
            eprintln!("rvsd: cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(&args, &engine, &health),
        }
    }
    engine.shutdown();
    tracing::info!(
        active = engine.active(),
        grace_s = grace.as_secs(),
        "stopped accepting; draining"
    );
    let deadline = Instant::now() + grace;
    while engine.active() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::info!(left = engine.active(), "exiting");
    ExitCode::SUCCESS
}

/// SIGHUP: re-read the files and apply only the difference. Changes made
/// through the API that the files do not contain are undone (the files
/// are the wanted state). Health state is carried over: the difference is
/// taken against the health-filtered table (see `health`), so a failed
/// server stays out and checks keep their counters.
fn reload(args: &Args, engine: &Engine, health: &crate::health::Health) {
    if args.demo {
        tracing::info!("SIGHUP ignored in the demo");
        return;
    }
    let loaded = match load(args) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "reload refused; running state unchanged");
            return;
        }
    };
    for s in &loaded.config.services {
        engine.set_proxy_protocol(s.config.key, s.proxy_protocol);
    }
    let specs = crate::health::specs_of(&loaded.config);
    match health.load(loaded.services, specs) {
        Ok(n) => tracing::info!(changes = n, "reloaded"),
        Err(e) => tracing::error!(error = %e, "reload refused; running state unchanged"),
    }
}
