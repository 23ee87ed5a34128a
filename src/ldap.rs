//! `type = "ldap"` connections (SPEC 9): LDAP and Active Directory behind
//! a password form served by realmgate.
//!
//! - [`escape`]: RFC 4515 filter values and RFC 4514 DN values.
//! - [`directory`]: the ldap3 client (rustls only): search-then-bind or AD
//!   direct bind, groups, the user id, AD's bind sub-codes.
//! - [`limit`]: failed sign-ins counted per login name and per client
//!   address (in Redis when sessions are there, so across replicas).
//! - [`settings`]: the connection's validated keys.
//!
//! - [`signin`]: the connection kind on the sign-in seam
//!   (`crate::connection`): the password form (`GET/POST
//!   /.auth/login/{connection}`); the one place a
//!   [`directory::DirectoryUser`] becomes an identity is
//!   [`signin::identity_of`].

pub mod check;
pub mod directory;
pub mod escape;
pub mod limit;
pub mod settings;
pub mod signin;

use std::collections::HashMap;
use std::sync::Arc;

pub use directory::{AccountState, Directory, DirectoryError, DirectoryUser, Password};
pub use settings::{LdapAttributes, LdapGroups, LdapSettings};

use crate::config::{ConnectionKind, Settings};

/// The directories of one config generation, by connection name. A
/// directory whose `ca_file` could not be loaded is kept as its error
/// (sign-in there answers 503; `check` reports it first).
#[derive(Default)]
pub struct Directories {
    by_name: HashMap<String, Result<Arc<Directory>, String>>,
}

impl Directories {
    pub fn new(settings: &Settings) -> Directories {
        let mut by_name = HashMap::new();
        for c in &settings.connections {
            if let ConnectionKind::Ldap(l) = &c.kind {
                let d = Directory::new(Arc::new((**l).clone())).map(Arc::new);
                if let Err(e) = &d {
                    tracing::error!(connection = %c.name, error = %e, "the LDAP connection cannot be used");
                }
                by_name.insert(c.name.clone(), d);
            }
        }
        Directories { by_name }
    }

    pub fn get(&self, name: &str) -> Option<&Result<Arc<Directory>, String>> {
        self.by_name.get(name)
    }
}

/// What the form says for a refused sign-in: status, heading, text. The
/// same text for an unknown user and a wrong password.
pub fn refusal(err: &DirectoryError) -> (u16, &'static str, &'static str) {
    match err {
        DirectoryError::InvalidCredentials => (
            401,
            "Sign-in failed",
            "The user name or password is incorrect. Check them and try again.",
        ),
        DirectoryError::Account(state) => (403, "Sign-in not possible", account_message(*state)),
        DirectoryError::NoUserId(_) => (
            403,
            "Sign-in not possible",
            "Your directory account lacks the permanent id this sign-in needs. Contact your IT department.",
        ),
        DirectoryError::Unavailable(_) | DirectoryError::Directory(_) => (
            503,
            "Sign-in is unavailable",
            "Your organization's directory cannot be reached right now. Try again in a few minutes; if it keeps happening, contact your IT department.",
        ),
    }
}

/// What a user is told about an account state the directory reported.
pub fn account_message(state: AccountState) -> &'static str {
    match state {
        AccountState::PasswordExpired => "Your password has expired. Change it, then sign in with the new password.",
        AccountState::MustChangePassword => "You must change your password before you can sign in. Change it, then sign in with the new password.",
        AccountState::Locked => "Your account is locked. Wait until it unlocks, or contact your IT department.",
        AccountState::Disabled => "Your account is disabled. Contact your IT department.",
        AccountState::AccountExpired => "Your account has expired. Contact your IT department.",
        AccountState::LogonHours => "Your account may not sign in at this time of day. Try again during your permitted hours, or contact your IT department.",
        AccountState::Workstation => "Your account may not sign in from here. Contact your IT department.",
        AccountState::Refused => "The directory refused to sign this account in. Contact your IT department.",
    }
}

/// True for the states `password_change_url` helps with.
pub fn needs_password_change(state: AccountState) -> bool {
    matches!(
        state,
        AccountState::PasswordExpired | AccountState::MustChangePassword
    )
}
