//! Configuration: one TOML file, `REALMGATE_` environment overrides and
//! `<key>_file` secrets, loaded with figment into the serde mirror in `raw`,
//! then validated into [`Settings`]. Every problem is collected with its key
//! path, so `realmgate check`, startup and SIGHUP reload report them all at once.

pub mod assertion_key;
mod load;
pub(crate) mod raw;
mod schema;
mod settings;
mod summary;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use schema::schema;
pub use settings::*;
pub use summary::{callback_urls, summary, warnings};
pub use validate::MIN_ADMIN_TOKEN_BYTES;
pub use validate::MIN_SECRET_BYTES;
pub use validate::{allow_lists, normalize_domain};

/// The default config path when neither `--config` nor `REALMGATE_CONFIG` is given.
pub const DEFAULT_PATH: &str = "./realmgate.toml";

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Key path such as `connection[1].tenant` or `REALMGATE_SESSION__SECRET`.
    pub key: String,
    /// What is wrong. Never contains a secret value.
    pub problem: String,
    /// What is expected instead.
    pub expected: String,
}

impl ConfigProblem {
    pub fn new(
        key: impl Into<String>,
        problem: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        ConfigProblem {
            key: key.into(),
            problem: problem.into(),
            expected: expected.into(),
        }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}; expected {}",
            self.key, self.problem, self.expected
        )
    }
}

/// Every problem found, in file order. Never empty.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors {
    /// The file the problems are in, when loaded from a file.
    pub file: Option<PathBuf>,
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        match &self.file {
            Some(p) => writeln!(
                f,
                "{} has {n} problem{}:",
                p.display(),
                if n == 1 { "" } else { "s" }
            )?,
            None => writeln!(
                f,
                "the configuration has {n} problem{}:",
                if n == 1 { "" } else { "s" }
            )?,
        }
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// The config path: `--config`, else `REALMGATE_CONFIG`, else `./realmgate.toml`.
pub fn resolve_path(cli: Option<&Path>) -> PathBuf {
    cli.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("REALMGATE_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
}

/// Loads the file at `resolve_path(path)` with the process environment.
pub fn load(path: Option<&Path>) -> Result<Settings, ConfigErrors> {
    let path = resolve_path(path);
    let text = std::fs::read_to_string(&path).map_err(|e| ConfigErrors {
        file: Some(path.clone()),
        problems: vec![ConfigProblem::new(
            "(file)",
            format!("cannot be read: {e}"),
            "a readable TOML file (pass --config FILE or set REALMGATE_CONFIG)",
        )],
    })?;
    load_with(&text, std::env::vars(), path.parent()).map_err(|mut e| {
        e.file = Some(path.clone());
        e
    })
}

/// Loads TOML text without the environment (tests, embedded configs).
pub fn load_str(text: &str) -> Result<Settings, ConfigErrors> {
    load_with(text, std::iter::empty(), None)
}

/// Loads TOML text with the given environment; relative `*_file` paths
/// resolve against `base_dir`.
pub fn load_with(
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
    base_dir: Option<&Path>,
) -> Result<Settings, ConfigErrors> {
    let mut problems = Vec::new();
    let settings = load::load(text, env, &mut problems).and_then(|(mut loaded, sources)| {
        let explained = std::mem::take(&mut loaded.explained);
        let loading = problems.len();
        let settings = validate::validate(loaded, base_dir, &mut problems);
        // "is missing" for a key whose absence loading already reported (a
        // misspelling of it, its value of the wrong type) only repeats it.
        let mut i = 0;
        problems.retain(|p| {
            i += 1;
            i <= loading || !(p.problem.starts_with("is missing") && explained.contains(&p.key))
        });
        // A value an environment variable set is reported under the variable.
        sources.label(&mut problems);
        settings
    });
    match settings {
        Some(s) if problems.is_empty() => Ok(s),
        _ => Err(ConfigErrors {
            file: None,
            problems,
        }),
    }
}

#[cfg(test)]
mod tests;
