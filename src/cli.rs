//! Command line: `run`, `check`, `test-connection`, `explain`, `migrate`,
//! `schema`, `healthcheck`, `demo`.
//!
//! Exit codes: 0 success; 1 a failed check (`test-connection`, `explain`
//! denying) or a runtime failure; 64 (`EX_USAGE`) an invalid configuration,
//! after printing every problem with its key.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgGroup, Parser, Subcommand, ValueEnum};

use crate::config::{LogFormat, Settings};

/// `EX_USAGE` from sysexits.h: the configuration is invalid.
const EX_USAGE: u8 = 64;

/// Reverse-proxy authentication gateway: home realm discovery, OpenID Connect
/// sign-in (Entra ID or any provider), sessions, identity headers.
#[derive(Debug, Parser)]
#[command(name = "realmgate", version, about, long_about = None)]
struct Cli {
    /// Config file (default: $REALMGATE_CONFIG, else ./realmgate.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format; overrides `[log] format`.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
    /// Log filter such as `info` or `info,realmgate=debug`; overrides
    /// `[log] level`. RUST_LOG, when set, wins over both.
    #[arg(long, global = true, value_name = "FILTER")]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(f: LogFormatArg) -> Self {
        match f {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PeerArg {
    #[value(name = "oauth2-proxy")]
    Oauth2Proxy,
    #[value(name = "mod_auth_openidc")]
    ModAuthOpenidc,
    #[value(name = "easyauth")]
    Easyauth,
}

impl From<PeerArg> for crate::migrate::Peer {
    fn from(p: PeerArg) -> Self {
        match p {
            PeerArg::Oauth2Proxy => crate::migrate::Peer::Oauth2Proxy,
            PeerArg::ModAuthOpenidc => crate::migrate::Peer::ModAuthOpenidc,
            PeerArg::Easyauth => crate::migrate::Peer::EasyAuth,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve (the default when no command is given).
    Run,
    /// Validate the configuration and print a summary with the callback URLs
    /// to register at each identity provider.
    Check,
    /// Fetch a connection's discovery document and JWKS and report what is
    /// unreachable or inconsistent.
    TestConnection {
        /// The connection's `name`.
        name: String,
        /// LDAP: a login to look up with the search account (no password
        /// is asked or sent).
        #[arg(long)]
        user: Option<String>,
    },
    /// Say which route, connection and policy decide a URL for an identity, and why.
    #[command(group(ArgGroup::new("identity").required(true).args(["claims", "user"])))]
    Explain {
        /// The URL a user would open, e.g. https://hr.contoso.com/reports.
        #[arg(long)]
        url: String,
        /// A JSON file with ID token claims.
        #[arg(long, value_name = "FILE")]
        claims: Option<PathBuf>,
        /// An email address (its domain picks the connection).
        #[arg(long, value_name = "EMAIL")]
        user: Option<String>,
    },
    /// Print an equivalent realmgate TOML for a peer's configuration, then
    /// (as comments at its end) every setting that does not map and why.
    Migrate {
        /// The peer whose configuration FILE is.
        #[arg(long, value_enum)]
        from: PeerArg,
        /// oauth2-proxy: its config file, or its flags / OAUTH2_PROXY_*
        /// variables one per line; mod_auth_openidc: the Apache config;
        /// easyauth: the authsettingsV2 JSON.
        file: PathBuf,
    },
    /// Print the JSON Schema of the configuration file (for editors such as
    /// taplo / Even Better TOML).
    Schema,
    /// Exit 0 when this instance's admin /readyz answers 200, else 1 (for
    /// container health checks; no shell needed).
    Healthcheck {
        /// Ask GET /.auth/health on the proxy listener instead (plain HTTP only).
        #[arg(long)]
        traffic: bool,
    },
    /// Start a local demo: a development identity provider, a demo app and the
    /// gateway in front of it. No Azure account needed.
    Demo {
        /// The gateway's port on 127.0.0.1.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Not used (the demo has its own configuration): declared here,
        /// hidden, so the global `--config` is neither offered by `demo
        /// --help` nor silently ignored (`parse` refuses it).
        #[arg(long, hide = true, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let code = command(cli);
    // Queued log lines are written before the process ends.
    crate::telemetry::flush();
    code
}

/// Parses the command line. `demo` runs on its own built-in configuration,
/// so its help does not offer the global `--config` (first hour 7), and
/// giving it one is refused rather than ignored.
fn parse(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Cli, clap::Error> {
    use clap::{CommandFactory, FromArgMatches};
    let mut cmd = Cli::command();
    let matches = cmd.try_get_matches_from_mut(args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    if let Some(Command::Demo { config, .. }) = &cli.command {
        if config.is_none() && cli.config.is_none() {
            return Ok(cli);
        }
        return Err(cmd.error(
            clap::error::ErrorKind::ArgumentConflict,
            "demo runs on its own built-in configuration and takes no --config; use `realmgate run --config FILE` for yours",
        ));
    }
    Ok(cli)
}

fn command(cli: Cli) -> ExitCode {
    let config = cli.config.as_deref();
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            let Some(settings) = load(config) else {
                return ExitCode::from(EX_USAGE);
            };
            init_logs(&cli.log_format, cli.log_level.as_deref(), Some(&settings));
            let path = crate::config::resolve_path(config);
            block_on(async { Ok(crate::server::run(settings, Some(path)).await?) })
                .map(|()| ExitCode::SUCCESS)
                .unwrap_or_else(|e| fail(&e))
        }
        Command::Check => {
            let Some(settings) = load(config) else {
                return ExitCode::from(EX_USAGE);
            };
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(crate::config::summary(&settings).as_bytes());
            let _ = out.flush();
            ExitCode::SUCCESS
        }
        Command::Migrate { from, file } => {
            let peer = crate::migrate::Peer::from(from);
            match crate::migrate::run(peer, &file) {
                Ok((toml, notes)) => {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(toml.as_bytes());
                    let _ = out.flush();
                    eprintln!(
                        "realmgate migrate: {notes} {} setting(s) did not map or changed; they are listed as comments at the end of the output. Supply the secrets listed there, then run `realmgate check`.",
                        peer.name()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("realmgate migrate: {}: {e}", file.display());
                    ExitCode::from(EX_USAGE)
                }
            }
        }
        Command::Schema => {
            let text = serde_json::to_string_pretty(&crate::config::schema())
                .expect("a schema is plain JSON");
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
            ExitCode::SUCCESS
        }
        Command::Healthcheck { traffic } => {
            let Some(settings) = load(config) else {
                return ExitCode::from(EX_USAGE);
            };
            use crate::healthcheck::{probe, target, Probe};
            let which = if traffic {
                Probe::Traffic
            } else {
                Probe::Admin
            };
            match target(&settings, which).and_then(|(addr, path)| probe(addr, path)) {
                Ok(said) => {
                    println!("ready: {said}");
                    ExitCode::SUCCESS
                }
                Err(why) => {
                    eprintln!("not ready: {why}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::TestConnection { name, user } => {
            let Some(settings) = load(config) else {
                return ExitCode::from(EX_USAGE);
            };
            init_logs(
                &cli.log_format,
                Some(cli.log_level.as_deref().unwrap_or("warn")),
                None,
            );
            if settings.connection(&name).is_none() {
                let names: Vec<&str> = settings
                    .connections
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect();
                eprintln!(
                    "There is no connection called {name:?}; expected one of: {}",
                    if names.is_empty() {
                        "(none configured)".to_string()
                    } else {
                        names.join(", ")
                    }
                );
                return ExitCode::from(EX_USAGE);
            }
            let ok = block_on(async {
                let mut out = std::io::stdout();
                match settings.connection(&name) {
                    Some(c) if c.is_ldap() => {
                        Ok(crate::ldap::check::test_connection(c, user.as_deref(), &mut out).await)
                    }
                    Some(c) if c.saml().is_some() => {
                        Ok(crate::saml::check::test_connection(c, &mut out).await)
                    }
                    _ => Ok(crate::oidc::test_connection(&settings, &name, &mut out).await),
                }
            });
            match ok {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => fail(&e),
            }
        }
        Command::Explain { url, claims, user } => {
            let Some(settings) = load(config) else {
                return ExitCode::from(EX_USAGE);
            };
            crate::policy::explain::run(&settings, &url, claims.as_deref(), user.as_deref())
        }
        Command::Demo { port, .. } => {
            init_logs(&cli.log_format, cli.log_level.as_deref(), None);
            block_on(crate::demo::run(port))
                .map(|()| ExitCode::SUCCESS)
                .unwrap_or_else(|e| fail(&e))
        }
    }
}

/// Loads and validates the configuration; on problems prints them all
/// ("Invalid configuration", then key, what is wrong, what is expected).
fn load(config: Option<&Path>) -> Option<Settings> {
    match crate::config::load(config) {
        Ok(s) => Some(s),
        Err(errors) => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "Invalid configuration: {errors}");
            None
        }
    }
}

fn init_logs(format: &Option<LogFormatArg>, level: Option<&str>, settings: Option<&Settings>) {
    let format = format
        .map(LogFormat::from)
        .or(settings.map(|s| s.log.format))
        .unwrap_or(LogFormat::Text);
    let level = level
        .or(settings.map(|s| s.log.level.as_str()))
        .unwrap_or("info");
    crate::telemetry::init(format, level);
}

/// Runs `fut` on a multi-threaded tokio runtime (one worker per core).
fn block_on<T>(fut: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("realmgate")
        .on_thread_park(crate::access_log::flush_thread)
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    runtime.block_on(fut)
}

fn fail(e: &anyhow::Error) -> ExitCode {
    tracing::error!(error = %format!("{e:#}"), "exiting");
    eprintln!("realmgate: {e:#}");
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_subcommand_means_run_and_config_is_global() {
        let cli = Cli::try_parse_from(["realmgate", "--config", "x.toml"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.config.as_deref(), Some(Path::new("x.toml")));
        let cli = Cli::try_parse_from(["realmgate", "check", "--config", "y.toml"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Check)));
        assert_eq!(cli.config.as_deref(), Some(Path::new("y.toml")));
    }

    #[test]
    fn explain_needs_exactly_one_identity() {
        assert!(Cli::try_parse_from(["realmgate", "explain", "--url", "https://a/"]).is_err());
        assert!(Cli::try_parse_from([
            "realmgate",
            "explain",
            "--url",
            "https://a/",
            "--user",
            "a@b.c",
            "--claims",
            "c.json"
        ])
        .is_err());
        assert!(Cli::try_parse_from([
            "realmgate",
            "explain",
            "--url",
            "https://a/",
            "--user",
            "a@b.c"
        ])
        .is_ok());
    }

    #[test]
    fn demo_help_offers_no_config_and_demo_refuses_one() {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        cmd.build();
        let demo = cmd.find_subcommand_mut("demo").unwrap();
        let help = demo.render_help().to_string();
        assert!(!help.contains("--config"), "{help}");
        assert!(help.contains("--port"), "{help}");
        let e = parse(["realmgate", "demo", "--config", "x.toml"].map(Into::into)).unwrap_err();
        assert!(e.to_string().contains("built-in configuration"), "{e}");
        let e = parse(["realmgate", "--config", "x.toml", "demo"].map(Into::into)).unwrap_err();
        assert!(e.to_string().contains("takes no --config"), "{e}");
        // Every other command keeps it, before or after the command name.
        assert!(parse(["realmgate", "run", "--config", "x.toml"].map(Into::into)).is_ok());
        assert!(parse(["realmgate", "--config", "x.toml", "check"].map(Into::into)).is_ok());
        assert!(parse(["realmgate", "demo", "--port", "9000"].map(Into::into)).is_ok());
    }

    #[test]
    fn demo_port_defaults_to_8080() {
        let cli = Cli::try_parse_from(["realmgate", "demo"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Demo { port: 8080, .. })
        ));
        assert!(Cli::try_parse_from(["realmgate", "--log-format", "yaml"]).is_err());
    }
}
