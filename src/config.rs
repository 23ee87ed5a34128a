//! Configuration: one TOML file, `REALMGATE_` environment overrides and
//! `<key>_file` secrets, loaded with figment into the serde mirror in `raw`,
//! then validated into [`Settings`]. Every problem is collected with its key
//! path, so `realmgate check`, startup and SIGHUP reload report them all at once.

mod settings;

pub use settings::*;
