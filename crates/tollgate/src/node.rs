//! A running node: loads the configuration, binds listeners, runs one
//! single-threaded runtime per worker thread (each with its own listening
//! socket through `SO_REUSEPORT` and its own upstream pool, like nginx's
//! workers), and a control thread for status, signals and reloads.
//!
//! Signals: `SIGHUP` re-reads the declarative file and swaps the snapshot
//! (a broken file is refused and the old configuration keeps serving);
//! `SIGTERM`/`SIGINT` stop accepting, drain in-flight requests for up to
//! `drain_timeout`, then exit 0.

use crate::settings::{AccessLogTarget, Database, Settings};
use anyhow::Context;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::watch;
use tollgate_admin::{AdminApi, ControlPlane};
use tollgate_model::Config;
use tollgate_plugins::runtime::PluginEnv;
use tollgate_proxy::access_log::{AccessLog, LogFormat};
use tollgate_proxy::balancer::dns::Dns;
use tollgate_proxy::balancer::registry::Registry;
use tollgate_proxy::snapshot::Snapshot;
use tollgate_proxy::trusted::TrustedIps;
use tollgate_proxy::upstream::pool::{Pool, PoolOptions};
use tollgate_proxy::{server, status, ProxyContext, ProxyOptions, SnapshotHandle, Worker};

/// Reads, validates and compiles a declarative file (for a DB-less node
/// when `db_less`).
pub fn load_snapshot(path: &Path, db_less: bool) -> anyhow::Result<Snapshot> {
    let config = tollgate_model::declarative::load_file_with(path, Some(plugin_schemas(db_less)))?;
    crate::certs::ParsedCertificates::default()
        .sni_table(&config)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Snapshot::compile(
        Arc::new(config),
        &PluginEnv::default(),
        &Registry::default(),
    )
    .with_context(|| path.display().to_string())
}

/// The plugin validator for a node with or without a database.
fn plugin_schemas(db_less: bool) -> &'static dyn tollgate_model::PluginSchemas {
    if db_less {
        &tollgate_admin::DbLessPluginRegistry
    } else {
        &tollgate_admin::PluginRegistry
    }
}

/// The SQLite file under the prefix.
pub fn database_path(settings: &Settings) -> PathBuf {
    settings.prefix.join("tollgate.db")
}

/// What a node's data plane is made of, for [`control_plane`].
#[derive(Default)]
pub struct DataPlane {
    /// Receives every accepted configuration, compiled.
    pub handle: Option<SnapshotHandle>,
    /// The plugins' node-wide environment.
    pub env: PluginEnv,
    /// The TLS listeners' certificates, updated with the configuration.
    pub certs: Option<Arc<tollgate_tls::server::CertResolver>>,
    /// Live upstream state (health, load, active checkers).
    pub upstreams: Arc<Registry>,
    /// Whether TLS handshakes ask for client certificates: set while an
    /// `mtls-auth` plugin is enabled (as Kong, which asks on every
    /// handshake then, since the route is not known yet).
    pub client_certs: Arc<AtomicBool>,
    /// The ACME manager, told about the acme plugin of each configuration.
    pub acme: Option<Arc<tollgate_acme::Acme>>,
}

/// Opens the control plane for the node's `database` setting; every
/// accepted configuration is compiled for and published to `plane`.
pub fn control_plane(settings: &Settings, plane: DataPlane) -> anyhow::Result<Arc<ControlPlane>> {
    let DataPlane {
        handle,
        env,
        certs,
        upstreams,
        client_certs,
        acme,
    } = plane;
    let parsed = crate::certs::ParsedCertificates::default();
    let prepare = move |config: Arc<Config>| -> Result<Box<dyn FnOnce() + Send>, String> {
        // Checked even without TLS listeners: a pair that cannot be
        // served is refused as Kong refuses it.
        let sni = parsed.sni_table(&config)?;
        let dns_seen = upstreams.dns().map(|d| d.generation());
        let snap =
            Snapshot::compile(config.clone(), &env, &upstreams).map_err(|e| e.to_string())?;
        let (handle, certs, upstreams) = (handle.clone(), certs.clone(), upstreams.clone());
        let wants_certs = config
            .plugins
            .iter()
            .any(|p| p.enabled && p.name == "mtls-auth");
        let client_certs = client_certs.clone();
        let acme = acme.clone();
        Ok(Box::new(move || {
            if let Some(a) = acme {
                a.configure(crate::acme::plugin_config(&config));
            }
            if let Some(h) = handle {
                h.store(Arc::new(snap));
            }
            upstreams.activate(&config);
            // Addresses that changed while this was compiled: once more.
            if let (Some(d), Some(seen)) = (upstreams.dns(), dns_seen) {
                d.published(seen);
            }
            client_certs.store(wants_certs, Ordering::Relaxed);
            if let Some(c) = certs {
                c.replace(sni);
            }
        }))
    };
    let cp = match settings.database {
        Database::Off => {
            let config: Config = file_config(settings)?.unwrap_or_default();
            ControlPlane::new(None, Some(Arc::new(config)), Box::new(prepare))
        }
        Database::Sqlite => {
            std::fs::create_dir_all(&settings.prefix)
                .with_context(|| format!("prefix {}", settings.prefix.display()))?;
            let store = tollgate_store::sqlite::SqliteStore::open(&database_path(settings))?;
            ControlPlane::new(Some(Box::new(store)), None, Box::new(prepare))
        }
    };
    Ok(Arc::new(cp.map_err(|e| anyhow::anyhow!(e))?))
}

/// Starts the thread that runs active health checks (`tollgate-health`, a
/// current-thread runtime of its own, so probes never wait behind proxy
/// traffic or Admin API work) and returns its runtime.
fn health_thread() -> anyhow::Result<tokio::runtime::Handle> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = rt.handle().clone();
    std::thread::Builder::new()
        .name("tollgate-health".into())
        .spawn(move || rt.block_on(std::future::pending::<()>()))?;
    Ok(handle)
}

/// The Admin API's window on the data plane's target health.
#[derive(Debug)]
struct HealthView(Arc<Registry>);

impl tollgate_admin::TargetHealth for HealthView {
    fn health(&self, upstream: uuid::Uuid, target: &str) -> tollgate_admin::TargetReport {
        let (health, addresses) = self.0.health(upstream, target);
        tollgate_admin::TargetReport {
            health: health.as_str(),
            addresses: addresses
                .into_iter()
                .map(|(addr, h)| (addr, h.as_str()))
                .collect(),
        }
    }

    fn set_health(
        &self,
        upstream: uuid::Uuid,
        target: &str,
        address: Option<&str>,
        healthy: bool,
    ) -> bool {
        self.0.set_health(upstream, target, address, healthy)
    }
}

fn pid_path(settings: &Settings) -> PathBuf {
    settings.prefix.join("tollgate.pid")
}

/// Sends a signal to the node whose pid file is under the prefix.
pub fn signal_running(settings: &Settings, signal: &str) -> ExitCode {
    let path = pid_path(settings);
    let pid = match std::fs::read_to_string(&path) {
        Ok(p) => p.trim().to_owned(),
        Err(e) => {
            eprintln!(
                "tollgate: cannot read {}: {e} (is a node running with this prefix?)",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    };
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        eprintln!("tollgate: {} does not hold a pid", path.display());
        return ExitCode::FAILURE;
    }
    match std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(&pid)
        .status()
    {
        Ok(s) if s.success() => {
            println!("tollgate: sent SIG{signal} to {pid}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("tollgate: could not signal process {pid}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOLLGATE_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "tollgate={level},tollgate_proxy={level},{level}"
        ))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Runs a node until SIGTERM/SIGINT.
pub fn run(settings: Settings) -> ExitCode {
    init_tracing(&settings.log_level);
    match run_inner(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("tollgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Binds each address once (resolving port 0) and once more per extra worker.
fn bind_all(
    listens: &[SocketAddr],
    workers: usize,
    what: &str,
) -> anyhow::Result<Vec<Vec<std::net::TcpListener>>> {
    let mut per_worker: Vec<Vec<std::net::TcpListener>> =
        (0..workers).map(|_| Vec::new()).collect();
    for addr in listens {
        server::ensure_free(*addr).with_context(|| format!("{what}_listen {addr}"))?;
        let first =
            server::bind_reuseport(*addr).with_context(|| format!("{what}_listen {addr}"))?;
        let actual = first.local_addr()?;
        tracing::info!("{what} listening on {actual}");
        for (i, list) in per_worker.iter_mut().enumerate() {
            if i == 0 {
                continue;
            }
            list.push(
                server::bind_reuseport(actual)
                    .with_context(|| format!("{what}_listen {actual}"))?,
            );
        }
        per_worker[0].push(first);
    }
    Ok(per_worker)
}

/// Writes `<prefix>/tollgate.pid` under an exclusive lock held for the
/// node's lifetime (the returned file).
fn write_pid_file(settings: &Settings) -> anyhow::Result<std::fs::File> {
    use std::io::Write;
    let path = pid_path(settings);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    if file.try_lock().is_err() {
        let other = std::fs::read_to_string(&path).unwrap_or_default();
        anyhow::bail!(
            "another node is running with prefix {} (pid {})",
            settings.prefix.display(),
            other.trim()
        );
    }
    file.set_len(0)?;
    writeln!(file, "{}", std::process::id())?;
    file.flush()?;
    Ok(file)
}

fn run_inner(settings: Settings) -> anyhow::Result<()> {
    for (name, list) in [
        ("admin_listen", &settings.admin_listen),
        ("status_listen", &settings.status_listen),
    ] {
        if let Some(l) = list.iter().find(|l| l.ssl) {
            anyhow::bail!(
                "{name}: {} ssl: only proxy listeners serve TLS in this version",
                l.addr
            );
        }
    }
    let public_admin = settings
        .admin_listen
        .iter()
        .find(|l| !l.addr.ip().is_loopback());
    if let (Some(l), None) = (public_admin, &settings.admin_token) {
        anyhow::bail!(
            "admin_listen {}: the Admin API is only served on a non-loopback address with admin_token set",
            l.addr
        );
    }
    let handle: SnapshotHandle = Arc::new(arc_swap::ArcSwap::from_pointee(Snapshot::empty()));
    std::fs::create_dir_all(&settings.prefix)
        .with_context(|| format!("prefix {}", settings.prefix.display()))?;
    let env = crate::tokens::plugin_env(&settings)?;
    let caches = env.caches.clone();
    let certs = crate::certs::resolver(&settings)?;
    let client_certs = Arc::new(AtomicBool::new(false));
    let acceptor = match &certs {
        Some(c) => Some(tollgate_tls::tokio_rustls::TlsAcceptor::from(
            tollgate_tls::server::server_config(c.clone(), client_certs.clone())?,
        )),
        None => None,
    };
    let health_rt = health_thread()?;
    let dns = {
        // Built and run on the health thread, which has the time for it.
        let _in_runtime = health_rt.enter();
        match Dns::new(settings.dns.clone()) {
            Ok(d) => Some(Arc::new(d)),
            Err(e) => {
                tracing::warn!("{e}; host names are resolved by the system at each new connection");
                None
            }
        }
    };
    let mut registry = Registry::with_checkers(health_rt.clone(), env.tls.clone());
    if let Some(d) = &dns {
        health_rt.spawn(d.clone().run());
        registry = registry.with_dns(d.clone());
    }
    let upstreams = Arc::new(registry);
    // ACME: challenge answers and memory-kept certificates shared with the
    // data plane; orders run on the health thread.
    let challenges = Arc::new(tollgate_tls::acme::Challenges::default());
    if let Some(c) = &certs {
        c.set_acme(challenges.clone());
    }
    let database_store = Arc::new(crate::acme::DatabaseStore::default());
    let acme = tollgate_acme::Acme::start(tollgate_acme::AcmeSetup {
        challenges: challenges.clone(),
        tls: env.tls.clone(),
        database: matches!(settings.database, Database::Sqlite)
            .then(|| database_store.clone() as Arc<dyn tollgate_acme::CertStore>),
        dir: settings.prefix.join("acme"),
        http01: settings.proxy_listen.iter().any(|l| !l.ssl),
        runtime: health_rt.clone(),
    });
    let cp = control_plane(
        &settings,
        DataPlane {
            handle: Some(handle.clone()),
            env,
            certs,
            upstreams: upstreams.clone(),
            client_certs,
            acme: Some(acme.clone()),
        },
    )?;
    database_store.attach(&cp);
    acme.check_renewals();

    let access_log = match &settings.access_log {
        AccessLogTarget::Off => None,
        target => {
            let out: Box<dyn std::io::Write + Send> = match target {
                AccessLogTarget::File(p) => {
                    let path = if p.is_absolute() {
                        p.clone()
                    } else {
                        settings.prefix.join(p)
                    };
                    if let Some(dir) = path.parent() {
                        std::fs::create_dir_all(dir)?;
                    }
                    Box::new(
                        std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(&path)
                            .with_context(|| format!("access_log {}", path.display()))?,
                    )
                }
                _ => Box::new(std::io::stdout()),
            };
            let format = if settings.access_log_json {
                LogFormat::Json
            } else {
                LogFormat::Combined
            };
            Some(AccessLog::start(out, format)?)
        }
    };
    let options = ProxyOptions {
        trusted_ips: TrustedIps::parse(settings.trusted_ips.iter().map(String::as_str))
            .map_err(|e| anyhow::anyhow!("trusted_ips: {e}"))?,
        real_ip: tollgate_proxy::trusted::RealIp {
            header: settings.real_ip_header.clone(),
            recursive: settings.real_ip_recursive,
        },
        max_uri_len: settings.max_uri_length,
        max_header_size: settings.max_header_size,
        client_header_timeout: settings.client_header_timeout,
        client_body_timeout: settings.client_body_timeout,
        max_connections: settings.max_connections,
        drain_timeout: settings.drain_timeout,
        acme: Some(challenges),
        ..ProxyOptions::default()
    };
    let shared = ProxyContext::new(handle.clone(), options, access_log);

    let workers = settings.worker_threads;
    let proxy_addrs: Vec<SocketAddr> = settings.proxy_listen.iter().map(|l| l.addr).collect();
    let per_worker = bind_all(&proxy_addrs, workers, "proxy")?;
    // Each bound listener with the TLS acceptor of its `ssl` flag.
    let per_worker: Vec<Vec<(std::net::TcpListener, Option<TlsAcceptor>)>> = per_worker
        .into_iter()
        .map(|list| {
            list.into_iter()
                .zip(&settings.proxy_listen)
                .map(|(l, cfg)| (l, acceptor.clone().filter(|_| cfg.ssl)))
                .collect()
        })
        .collect();
    let status_addrs: Vec<SocketAddr> = settings.status_listen.iter().map(|l| l.addr).collect();
    let admin_addrs: Vec<SocketAddr> = settings.admin_listen.iter().map(|l| l.addr).collect();
    let status_listeners: Vec<std::net::TcpListener> = bind_all(&status_addrs, 1, "status")?
        .into_iter()
        .flatten()
        .collect();
    let admin_listeners: Vec<std::net::TcpListener> = bind_all(&admin_addrs, 1, "admin")?
        .into_iter()
        .flatten()
        .collect();
    let database = match settings.database {
        Database::Off => "off",
        Database::Sqlite => "sqlite",
    };
    let api = AdminApi::new(
        cp.clone(),
        settings.admin_token.clone(),
        database,
        Arc::new(HealthView(upstreams)),
    );
    api.set_proxy_caches(caches);
    api.set_acme(Arc::new(crate::acme::AcmeView {
        acme,
        runtime: health_rt,
    }));

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut threads = Vec::new();
    for (i, listeners) in per_worker.into_iter().enumerate() {
        let worker = Arc::new(Worker {
            shared: shared.clone(),
            pool: Pool::new(settings.upstream_keepalive),
        });
        let rx = shutdown_rx.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("tollgate-worker-{i}"))
                .spawn(move || worker_main(listeners, worker, rx))?,
        );
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let ready = Arc::new(AtomicBool::new(true));
    // The pid file is written once every listener is bound (so `reload`
    // never signals a node that failed to start), and stays locked while the
    // node runs: a second node on the same prefix is refused.
    let _pid_lock = write_pid_file(&settings)?;
    let admin_thread = {
        let (api, shared, rx) = (api.clone(), shared.clone(), shutdown_rx.clone());
        std::thread::Builder::new()
            .name("tollgate-admin".into())
            .spawn(move || admin_main(admin_listeners, api, shared, rx))?
    };
    let listeners = Listeners {
        status: status_listeners,
    };
    if let Some(d) = dns {
        rt.spawn(republish_on_dns_change(d, cp.clone()));
    }
    rt.block_on(control(
        settings,
        cp,
        shared,
        listeners,
        ready,
        shutdown_tx,
        shutdown_rx,
    ))?;
    for t in threads {
        let _ = t.join();
    }
    let _ = admin_thread.join();
    tracing::info!("stopped");
    Ok(())
}

type TlsAcceptor = tollgate_tls::tokio_rustls::TlsAcceptor;

fn worker_main(
    listeners: Vec<(std::net::TcpListener, Option<TlsAcceptor>)>,
    worker: Arc<Worker>,
    shutdown: watch::Receiver<bool>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("worker runtime: {e}");
            return;
        }
    };
    rt.block_on(async move {
        let mut tasks = Vec::new();
        for (l, tls) in listeners {
            let l = match tokio::net::TcpListener::from_std(l) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!("listener: {e}");
                    continue;
                }
            };
            tasks.push(tokio::spawn(tollgate_proxy::downstream::serve(
                l,
                tls,
                worker.clone(),
                tollgate_proxy::handler::handle,
                shutdown.clone(),
            )));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

/// The control thread's listeners.
struct Listeners {
    status: Vec<std::net::TcpListener>,
}

/// Lowers the calling thread's scheduling priority (nice 19) so that Admin
/// API work (validating and compiling a whole configuration per write)
/// yields the CPU to proxy workers when they share a core. Linux nice values
/// are per thread; `renice` is given this thread's id. Best effort.
fn lower_thread_priority() {
    let Ok(target) = std::fs::read_link("/proc/thread-self") else {
        return;
    };
    let Some(tid) = target
        .file_name()
        .and_then(|t| t.to_str())
        .map(str::to_owned)
    else {
        return;
    };
    match std::process::Command::new("renice")
        .args(["-n", "19", "-p", &tid])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
    {
        Ok(s) if s.success() => tracing::debug!(tid, "admin thread reniced to 19"),
        _ => tracing::debug!("could not lower the admin thread's priority"),
    }
}

/// The Admin API's own thread and runtime, at a lower priority than the
/// proxy workers: a burst of writes cannot starve proxy traffic.
fn admin_main(
    listeners: Vec<std::net::TcpListener>,
    api: Arc<AdminApi>,
    shared: Arc<ProxyContext>,
    shutdown: watch::Receiver<bool>,
) {
    if listeners.is_empty() {
        return;
    }
    lower_thread_priority();
    // Its own connection budget, apart from the proxy's.
    let shared = ProxyContext::new(shared.snapshot.clone(), shared.options.clone(), None);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("admin runtime: {e}");
            return;
        }
    };
    let worker = Arc::new(Worker {
        shared,
        pool: Pool::new(PoolOptions::default()),
    });
    rt.block_on(async move {
        let mut tasks = Vec::new();
        for l in listeners {
            let Ok(l) = tokio::net::TcpListener::from_std(l) else {
                continue;
            };
            let api = api.clone();
            let h = move |_w, _c, r| {
                let api = api.clone();
                async move {
                    Ok(api
                        .handle(r)
                        .await
                        .map(tollgate_proxy::body::ProxyBody::full))
                }
            };
            tasks.push(tokio::spawn(server::serve(
                l,
                worker.clone(),
                h,
                shutdown.clone(),
            )));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

#[allow(clippy::too_many_arguments)]
async fn control(
    settings: Settings,
    cp: Arc<ControlPlane>,
    shared: Arc<ProxyContext>,
    listeners: Listeners,
    ready: Arc<AtomicBool>,
    shutdown_tx: watch::Sender<bool>,
    shutdown_rx: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    // Status answers keep their own connection budget: a flood of proxy
    // connections must not make /status/ready unreachable.
    let shared = ProxyContext::new(shared.snapshot.clone(), shared.options.clone(), None);
    let worker = Arc::new(Worker {
        shared,
        pool: Pool::new(PoolOptions::default()),
    });
    let mut tasks = Vec::new();
    for l in listeners.status {
        let l = tokio::net::TcpListener::from_std(l)?;
        let ready = ready.clone();
        let h = move |w, c, r| status::handle(w, c, r, ready.load(Ordering::Relaxed));
        tasks.push(tokio::spawn(server::serve(
            l,
            worker.clone(),
            h,
            shutdown_rx.clone(),
        )));
    }
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hup.recv() => reload(&settings, &cp).await,
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("shutting down: draining in-flight requests");
    ready.store(false, Ordering::Relaxed);
    let _ = shutdown_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let _ = std::fs::remove_file(pid_path(&settings));
    Ok(())
}

/// Compiles and publishes the configuration again each time DNS changes a
/// name's addresses (changes arriving together are published once).
async fn republish_on_dns_change(dns: Arc<Dns>, cp: Arc<ControlPlane>) {
    loop {
        dns.changed().await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let cp = cp.clone();
        match tokio::task::spawn_blocking(move || cp.republish()).await {
            Ok(Ok(())) => tracing::debug!("configuration republished with new DNS answers"),
            Ok(Err(e)) => tracing::error!("republishing after a DNS change failed: {e}"),
            Err(e) => tracing::error!("republishing after a DNS change failed: {e}"),
        }
    }
}

/// The configuration a DB-less node serves: its nginx configuration
/// translated, or its declarative file; None when it has neither.
pub fn file_config(settings: &Settings) -> anyhow::Result<Option<Config>> {
    if let Some(path) = &settings.nginx_conf {
        let t = tollgate_nginx::load(path)?;
        for w in &t.warnings {
            tracing::warn!("{w}");
        }
        let name = path.display().to_string();
        let config = tollgate_model::declarative::from_value_with(
            &t.document,
            &name,
            Some(plugin_schemas(true)),
        )?;
        return Ok(Some(config));
    }
    match &settings.declarative_config {
        Some(path) => Ok(Some(tollgate_model::declarative::load_file_with(
            path,
            Some(plugin_schemas(true)),
        )?)),
        None => Ok(None),
    }
}

async fn reload(settings: &Settings, cp: &Arc<ControlPlane>) {
    if settings.database != Database::Off
        || (settings.declarative_config.is_none() && settings.nginx_conf.is_none())
    {
        tracing::info!("reload: the configuration lives in the database; nothing to re-read");
        return;
    }
    let settings = settings.clone();
    let loaded = tokio::task::spawn_blocking(move || file_config(&settings)).await;
    match loaded {
        Ok(Ok(Some(config))) => match cp.replace_all(config) {
            Ok(()) => tracing::info!(routes = cp.config().routes.len(), "configuration reloaded"),
            Err(e) => tracing::error!(
                "reload refused, keeping the current configuration: {}",
                e.body()["message"]
                    .as_str()
                    .unwrap_or("invalid configuration")
            ),
        },
        Ok(Ok(None)) => {}
        Ok(Err(e)) => tracing::error!("reload refused, keeping the current configuration: {e:#}"),
        Err(e) => tracing::error!("reload failed: {e}"),
    }
}
