//! The `tollgate` command: `run` a node, `check` a configuration, `reload` a
//! running node.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod acme;
mod certs;
mod node;
mod settings;
mod tokens;

use clap::{Parser, Subcommand};
use settings::Settings;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc: the proxy allocates small, short-lived buffers on every request;
/// measured with callgrind, glibc's malloc/free were ~19% of userspace
/// instructions per proxied request.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tollgate: a reverse proxy and Kong-compatible API gateway.
#[derive(Parser, Debug)]
#[command(name = "tollgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a node.
    Run {
        /// Settings file (TOML); TOLLGATE_<SETTING> environment variables override it.
        #[arg(short = 'c', long = "conf")]
        conf: Option<PathBuf>,
        /// Serve this nginx configuration (DB-less; its `listen`s are the
        /// proxy listeners unless TOLLGATE_PROXY_LISTEN is set).
        #[arg(long = "nginx-conf")]
        nginx_conf: Option<PathBuf>,
    },
    /// Validate the settings and the declarative configuration without starting (exit 0 or 1).
    Check {
        /// Settings file (TOML).
        #[arg(short = 'c', long = "conf")]
        conf: Option<PathBuf>,
        /// A declarative file to check instead of the `declarative_config` setting.
        file: Option<PathBuf>,
        /// Check this nginx configuration instead (like `nginx -t`).
        #[arg(long = "nginx-conf")]
        nginx_conf: Option<PathBuf>,
    },
    /// Print the Kong declarative file (JSON) equivalent to an nginx configuration.
    Convert {
        /// The nginx configuration.
        #[arg(long = "nginx-conf")]
        nginx_conf: PathBuf,
    },
    /// Import or export the database's configuration as a Kong declarative file.
    Config {
        /// Settings file (TOML).
        #[arg(short = 'c', long = "conf")]
        conf: Option<PathBuf>,
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Ask the running node (found through `<prefix>/tollgate.pid`) to re-read its configuration.
    Reload {
        /// Settings file (TOML).
        #[arg(short = 'c', long = "conf")]
        conf: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigAction {
    /// Replace the database's configuration with a declarative file (atomically).
    #[command(name = "db_import")]
    DbImport {
        /// The declarative file (YAML or JSON).
        file: PathBuf,
    },
    /// Write the database's configuration as a declarative file (JSON, which is valid YAML).
    #[command(name = "db_export")]
    DbExport {
        /// Where to write it (`-` for standard output).
        file: PathBuf,
    },
}

fn config_command(settings: &Settings, action: ConfigAction) -> ExitCode {
    if settings.database != settings::Database::Sqlite {
        eprintln!("tollgate: config db_import/db_export need database = sqlite");
        return ExitCode::FAILURE;
    }
    let cp = match node::control_plane(settings, Default::default()) {
        Ok(cp) => cp,
        Err(e) => {
            eprintln!("tollgate: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match action {
        ConfigAction::DbImport { file } => {
            let config = match tollgate_model::declarative::load_file_with(
                &file,
                Some(&tollgate_admin::PluginRegistry),
            ) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("tollgate: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match cp.replace_all(config) {
                Ok(()) => {
                    println!(
                        "tollgate: imported {} into {}",
                        file.display(),
                        node::database_path(settings).display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("tollgate: {}", e.body());
                    ExitCode::FAILURE
                }
            }
        }
        ConfigAction::DbExport { file } => {
            let text = match serde_json::to_string_pretty(&cp.export()) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("tollgate: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let written = if file.as_os_str() == "-" {
                println!("{text}");
                Ok(())
            } else {
                std::fs::write(&file, text + "\n")
            };
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("tollgate: {}: {e}", file.display());
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn load_settings(conf: Option<&std::path::Path>) -> Result<Settings, ExitCode> {
    Settings::load(conf, std::env::vars()).map_err(|e| {
        eprintln!("tollgate: {e}");
        ExitCode::FAILURE
    })
}

/// Settings for serving an nginx configuration: DB-less, with the file's
/// `listen`s and `worker_processes` unless the environment sets them.
fn nginx_settings(
    conf: Option<&std::path::Path>,
    path: &std::path::Path,
) -> Result<Settings, ExitCode> {
    let t = tollgate_nginx::load(path).map_err(|e| {
        eprintln!("tollgate: {e}");
        ExitCode::FAILURE
    })?;
    let mut extra = vec![
        ("TOLLGATE_NGINX_CONF".to_owned(), path.display().to_string()),
        ("TOLLGATE_DATABASE".to_owned(), "off".to_owned()),
    ];
    if std::env::var_os("TOLLGATE_PROXY_LISTEN").is_none() {
        extra.push(("TOLLGATE_PROXY_LISTEN".to_owned(), t.listen.join(", ")));
    }
    if let (None, Some(n)) = (std::env::var_os("TOLLGATE_WORKER_THREADS"), t.workers) {
        extra.push(("TOLLGATE_WORKER_THREADS".to_owned(), n.to_string()));
    }
    Settings::load(conf, std::env::vars().chain(extra)).map_err(|e| {
        eprintln!("tollgate: {e}");
        ExitCode::FAILURE
    })
}

/// `tollgate convert --nginx-conf FILE`.
fn convert(path: &std::path::Path) -> ExitCode {
    match tollgate_nginx::load(path) {
        Ok(t) => {
            for w in &t.warnings {
                eprintln!("tollgate: warning: {w}");
            }
            match serde_json::to_string_pretty(&t.document) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("tollgate: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("tollgate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { conf, nginx_conf } => {
            let settings = match &nginx_conf {
                Some(path) => nginx_settings(conf.as_deref(), path),
                None => load_settings(conf.as_deref()),
            };
            match settings {
                Ok(s) => node::run(s),
                Err(code) => code,
            }
        }
        Command::Convert { nginx_conf } => convert(&nginx_conf),
        Command::Check {
            conf,
            file,
            nginx_conf: Some(path),
        } => {
            let settings = match nginx_settings(conf.as_deref(), &path) {
                Ok(s) => s,
                Err(code) => return code,
            };
            match node::file_config(&settings) {
                Ok(Some(c)) => {
                    let _ = file;
                    println!(
                        "tollgate: the nginx configuration file {} syntax is ok and translates to {} services, {} routes, {} upstreams",
                        path.display(),
                        c.services.len(),
                        c.routes.len(),
                        c.upstreams.len()
                    );
                    ExitCode::SUCCESS
                }
                Ok(None) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("tollgate: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check { conf, file, .. } => {
            let settings = match load_settings(conf.as_deref()) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let db_less = settings.database == settings::Database::Off;
            let Some(path) = file.or(settings.declarative_config) else {
                println!("tollgate: settings are ok (no declarative_config to check)");
                return ExitCode::SUCCESS;
            };
            match node::load_snapshot(&path, db_less) {
                Ok(snap) => {
                    println!(
                        "tollgate: configuration file {} is ok ({} services, {} routes, {} upstreams)",
                        path.display(),
                        snap.config.services.len(),
                        snap.config.routes.len(),
                        snap.config.upstreams.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("tollgate: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Config { conf, action } => match load_settings(conf.as_deref()) {
            Ok(s) => config_command(&s, action),
            Err(code) => code,
        },
        Command::Reload { conf } => match load_settings(conf.as_deref()) {
            Ok(s) => node::signal_running(&s, "HUP"),
            Err(code) => code,
        },
    }
}
