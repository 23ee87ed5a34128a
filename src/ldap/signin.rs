//! The LDAP connection kind on the sign-in seam (`crate::connection`):
//! realmgate's own password form (SPEC 9).
//!
//! - **begin** (`GET /.auth/login/{connection}`): the form, with a fresh
//!   anti-forgery token. The token is the `state` of a pending login that
//!   the caller binds to the browser (the HMAC-signed state cookie,
//!   `session::state`): the same binding as the OpenID Connect `state`.
//!   The pending login also keeps the validated target, so the POST cannot
//!   change it.
//! - **complete** (`POST /.auth/login/{connection}`,
//!   [`SignIn::completes_at_login_post`]): the caller has already taken the
//!   pending login named by the form's `csrf` field from this browser's
//!   cookie, spent it, and checked it began at this connection; a POST
//!   without one is refused before this code runs, so before the password
//!   is looked at. Then: the failure limits (`ldap::limit`, per canonical
//!   login, per client address, and per directory entry once the search
//!   found it), the directory, a [`VerifiedIdentity`]. That part runs in a
//!   task of its own (`attempt`), so a browser that disconnects mid-bind
//!   cannot keep its failure from being counted.
//! - **After sign-in**: a password that expires within [`EXPIRY_WARNING`]
//!   gets a notice page ([`SignIn::notice`]) with Continue.
//! - **A refusal** shows the form again with the reason and a new token
//!   (the refused one is spent); a directory that cannot be reached shows
//!   the 503 page.
//! - **The password** is moved into a [`Password`] (zeroized on drop) and
//!   dropped as soon as the directory answered; the caller zeroizes the
//!   parsed form. It is never logged, rendered or stored; neither is the
//!   login name (usually an email address, SPEC 5.3).

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures_util::future::BoxFuture;
use http::StatusCode;
use rand::RngCore;

use super::limit::Failures;
use super::{Directories, Directory, DirectoryError, DirectoryUser, Password};
use crate::auth::form_get;
use crate::config::{ConnectionKind, ConnectionSettings};
use crate::connection::{
    Begin, BeginRequest, CompleteRequest, Notice, Pending, Refusal, RefusalPage, SignIn,
    SignInError, VerifiedIdentity,
};
use crate::session::store::{SessionStore, StoreError};
use crate::ui::{Pages, PasswordView};

/// Longest `login_hint` pre-filled.
const MAX_HINT: usize = 512;

/// The form field that carries the anti-forgery token.
const TOKEN_FIELD: &str = "csrf";

/// What LDAP sign-ins share across requests: the directories of the current
/// config generation, the failure counters, and the store that shares them
/// across replicas (Redis).
#[derive(Clone, Copy)]
pub struct Shared<'a> {
    pub directories: &'a Directories,
    pub failures: &'a Failures,
    pub store: &'a Arc<dyn SessionStore>,
}

/// One LDAP connection's sign-in.
pub struct LdapSignIn<'a> {
    conn: &'a ConnectionSettings,
    shared: Shared<'a>,
    /// Set by a successful `complete` whose password expires soon.
    notice: std::sync::Mutex<Option<Notice>>,
}

impl<'a> LdapSignIn<'a> {
    pub fn new(conn: &'a ConnectionSettings, shared: Shared<'a>) -> LdapSignIn<'a> {
        LdapSignIn {
            conn,
            shared,
            notice: std::sync::Mutex::new(None),
        }
    }

    fn directory(&self) -> Result<Arc<Directory>, DirectoryError> {
        match self.shared.directories.get(&self.conn.name) {
            Some(Ok(d)) => Ok(d.clone()),
            Some(Err(e)) => Err(DirectoryError::Directory(e.clone())),
            None => Err(DirectoryError::Directory(
                "no directory for this connection".into(),
            )),
        }
    }

    async fn check(&self, req: &CompleteRequest<'_>) -> Result<VerifiedIdentity, SignInError> {
        let conn = self.conn;
        let password = Password::new(form_get(req.params, "password").unwrap_or("").to_string());
        let login = form_get(req.params, "username").unwrap_or("").trim();
        let login = if login.len() > super::directory::MAX_LOGIN_BYTES {
            ""
        } else {
            login
        };
        let again = |e: SignInError, message: &str, status: StatusCode| {
            let page = self.form_again(req, login, message, status, None);
            e.with_page(page)
        };
        let directory = match self.directory() {
            Ok(d) => d,
            Err(e) => return Err(self.refused(req, login, &e)),
        };
        let cfg = directory.settings();
        let window = cfg.failure_window;
        // The attempt runs in a task of its own: a browser that disconnects
        // mid-bind drops this request's future, but the bind still ends in
        // its failure (or success) being counted, and the attempt stops
        // counting as under way only then.
        let attempt = tokio::spawn(attempt(
            Attempt {
                directory,
                failures: self.shared.failures.clone(),
                store: self.shared.store.clone(),
                connection: conn.name.clone(),
                login: login.to_string(),
                client: req.client,
            },
            password,
        ));
        let outcome = attempt.await.unwrap_or_else(|e| {
            Outcome::Refused(DirectoryError::Directory(format!(
                "the sign-in task ended: {e}"
            )))
        });
        let user = match outcome {
            Outcome::User(u) => u,
            Outcome::Refused(e) => return Err(self.refused(req, login, &e)),
            Outcome::Limited => {
                let minutes = window.as_secs().div_ceil(60);
                let message = format!("Too many failed sign-ins for this account or from your network. Try again in {minutes} minute{}.", if minutes == 1 { "" } else { "s" });
                let e = SignInError::new(
                    Refusal::RateLimited,
                    format!("too many failures for this login or client {}", req.client),
                );
                return Err(again(e, &message, StatusCode::TOO_MANY_REQUESTS));
            }
            Outcome::Store(e) => {
                // Fail closed: the session could not be stored either.
                return Err(SignInError::new(
                    Refusal::StoreUnavailable,
                    format!("failure counters: {e}"),
                ));
            }
        };
        let notice = user
            .password_expires_in
            .and_then(|left| expiry_notice(conn, left));
        let identity = identity_of(conn, user).ok_or_else(|| {
            // An empty id attribute: the directory's answer names nobody.
            self.refused(req, login, &DirectoryError::NoUserId("(empty)".into()))
        })?;
        if let Some(n) = notice {
            *self
                .notice
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(n);
        }
        Ok(identity)
    }

    /// A refusal for a directory error: the form again with the reason (the
    /// same text for an unknown user and a wrong password), or the 503 page.
    fn refused(&self, req: &CompleteRequest<'_>, login: &str, e: &DirectoryError) -> SignInError {
        let reason = match e {
            DirectoryError::InvalidCredentials => Refusal::InvalidCredentials,
            DirectoryError::Account(_) => Refusal::AccountState,
            DirectoryError::NoUserId(_) => Refusal::MissingUserId,
            DirectoryError::Unavailable(_) => Refusal::DirectoryUnavailable,
            DirectoryError::Directory(_) => Refusal::DirectoryError,
        };
        let err = SignInError::new(reason, e.to_string());
        let (status, title, message) = super::refusal(e);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let retry = format!("/.auth/login/{}", self.conn.name);
            let html =
                req.pages
                    .error(status.as_u16(), title, message, Some(("Try again", &retry)));
            return err.with_page(RefusalPage {
                status,
                html,
                pending: None,
            });
        }
        let change_url = match (e, &self.conn.kind) {
            (DirectoryError::Account(state), ConnectionKind::Ldap(l))
                if super::needs_password_change(*state) =>
            {
                l.password_change_url.as_ref().map(|u| u.to_string())
            }
            _ => None,
        };
        let page = self.form_again(req, login, message, status, change_url);
        err.with_page(page)
    }

    /// The form again, the user name kept, with a new token for the same
    /// target.
    fn form_again(
        &self,
        req: &CompleteRequest<'_>,
        login: &str,
        message: &str,
        status: StatusCode,
        change_url: Option<String>,
    ) -> RefusalPage {
        let pending = new_pending();
        let mut v = view(self.conn, Some(pending.state.clone()), login, Some(message));
        v.change_url = change_url;
        RefusalPage {
            status,
            html: req.pages.password(&v),
            pending: Some(pending),
        }
    }
}

impl SignIn for LdapSignIn<'_> {
    fn begin<'b>(&'b self, req: BeginRequest<'b>) -> BoxFuture<'b, Result<Begin, SignInError>> {
        Box::pin(async move {
            let hint = form_get(req.query, "login_hint")
                .map(str::trim)
                .filter(|h| h.len() <= MAX_HINT && !h.chars().any(char::is_control))
                .unwrap_or("");
            Ok(form_page(self.conn, req.pages, hint))
        })
    }

    fn state_param(&self) -> &'static str {
        TOKEN_FIELD
    }

    fn completes_at_login_post(&self) -> bool {
        true
    }

    fn complete<'b>(
        &'b self,
        req: CompleteRequest<'b>,
    ) -> BoxFuture<'b, Result<VerifiedIdentity, SignInError>> {
        Box::pin(async move { self.check(&req).await })
    }

    fn notice(&self) -> Option<Notice> {
        self.notice
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// A password that expires within this is announced after sign-in (AD
/// answers the expiry time whatever it is; OpenLDAP's ppolicy says it only
/// within its own `pwdExpireWarning`, and is announced whenever it does).
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// The notice for a password that expires in `left`, if soon.
pub fn expiry_notice(conn: &ConnectionSettings, left: Duration) -> Option<Notice> {
    if left > EXPIRY_WARNING {
        return None;
    }
    let days = left.as_secs().div_ceil(24 * 3600);
    let when = match days {
        0 | 1 => "within a day".to_string(),
        n => format!("in {n} days"),
    };
    let link = match &conn.kind {
        ConnectionKind::Ldap(l) => l
            .password_change_url
            .as_ref()
            .map(|u| ("Change your password".to_string(), u.to_string())),
        _ => None,
    };
    let advice = if link.is_some() {
        "Change it now, or continue and change it before then."
    } else {
        "Change it before then (your IT department can tell you how)."
    };
    Some(Notice {
        title: "Your password expires soon".into(),
        message: format!("Your password expires {when}. {advice}"),
        link,
    })
}

/// What one attempt needs, owned: it runs in a task of its own.
struct Attempt {
    directory: Arc<Directory>,
    failures: Failures,
    store: Arc<dyn SessionStore>,
    connection: String,
    login: String,
    client: std::net::IpAddr,
}

enum Outcome {
    User(DirectoryUser),
    Refused(DirectoryError),
    /// Beyond the failure limit.
    Limited,
    Store(StoreError),
}

/// The failure limits, the directory, and the counting of the outcome: one
/// unit that runs to its end even if the request that started it is gone.
async fn attempt(a: Attempt, password: Password) -> Outcome {
    let cfg = a.directory.settings();
    let (max, window) = (cfg.max_failed_logins, cfg.failure_window);
    let mut keys = super::limit::keys(&a.connection, &a.login, a.client).to_vec();
    // Held until the outcome is recorded: an attempt under way counts
    // against the limit, so concurrent guesses cannot all pass the check.
    let _typed = match a.failures.begin(&a.store, &keys, max, window).await {
        Ok(Some(attempt)) => attempt,
        Ok(None) => return Outcome::Limited,
        Err(e) => return Outcome::Store(e),
    };
    let counted = |e: &DirectoryError| {
        matches!(
            e,
            DirectoryError::InvalidCredentials | DirectoryError::Account(_)
        )
    };
    let resolved = match a.directory.resolve(&a.login, &password).await {
        Ok(r) => r,
        Err(e) => {
            if counted(&e) {
                record(&a, &keys, window).await;
            }
            return Outcome::Refused(e);
        }
    };
    // The entry the login names, however it was spelled: one budget.
    let _entry = match resolved.dn() {
        Some(dn) => {
            let entry = super::limit::entry_key(&a.connection, dn);
            match a
                .failures
                .begin(&a.store, std::slice::from_ref(&entry), max, window)
                .await
            {
                Ok(Some(attempt)) => {
                    keys.push(entry);
                    Some(attempt)
                }
                Ok(None) => return Outcome::Limited,
                Err(e) => return Outcome::Store(e),
            }
        }
        None => None,
    };
    let result = a.directory.finish(resolved, &a.login, &password).await;
    drop(password);
    match result {
        Ok(user) => {
            // The login's own count starts again (and its entry's); the
            // address's does not (one success must not clear a spray of
            // failures from that network).
            // keys: [login, address, entry?].
            let own: Vec<String> = keys
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != 1)
                .map(|(_, k)| k.clone())
                .collect();
            if let Err(e) = a.failures.reset(&a.store, &own).await {
                tracing::warn!(error = %e, "the failure count of a login could not be reset");
            }
            Outcome::User(user)
        }
        Err(e) => {
            if counted(&e) {
                record(&a, &keys, window).await;
            }
            Outcome::Refused(e)
        }
    }
}

async fn record(a: &Attempt, keys: &[String], window: Duration) {
    if let Err(se) = a.failures.record(&a.store, keys, window).await {
        tracing::error!(error = %se, "a failed sign-in could not be counted");
    }
}

/// The form with a new token (its pending login for the caller to bind).
fn form_page(conn: &ConnectionSettings, pages: &Pages, hint: &str) -> Begin {
    let pending = new_pending();
    let v = view(conn, Some(pending.state.clone()), hint, None);
    Begin::Page {
        status: StatusCode::OK,
        html: pages.password(&v),
        pending: Some(pending),
    }
}

/// A new token: 256 random bits.
fn new_pending() -> Pending {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    Pending {
        state: URL_SAFE_NO_PAD.encode(bytes),
        nonce: String::new(),
        pkce_verifier: String::new(),
    }
}

fn view(
    conn: &ConnectionSettings,
    csrf: Option<String>,
    username: &str,
    message: Option<&str>,
) -> PasswordView {
    PasswordView {
        connection: conn.display_name.clone(),
        action: format!("/.auth/login/{}", conn.name),
        csrf,
        username: username.to_string(),
        message: message.map(str::to_string),
        change_url: None,
        back: "/.auth/login".to_string(),
    }
}

/// The one conversion from a directory user to an identity: the user id is
/// `<connection>:<objectGUID or entryUUID>` (SPEC 6.1), never the login;
/// the email counts as verified only with `trusted_email` (SPEC 9). `None`
/// when the id is empty.
pub(crate) fn identity_of(
    conn: &ConnectionSettings,
    user: DirectoryUser,
) -> Option<VerifiedIdentity> {
    let email_trust = crate::connection::email_trust(conn, user.email.is_some(), None, false);
    // The directory that vouched: no issuer URL of its own.
    let issuer = format!("ldap:{}", conn.name);
    if user.subject.is_empty() {
        return None;
    }
    Some(
        VerifiedIdentity::builder(conn, &user.subject, None, &issuer)?
            .email(user.email.as_deref(), email_trust)
            .name(user.name.as_deref())
            .preferred_username(user.username)
            .groups(user.groups)
            .build(),
    )
}
