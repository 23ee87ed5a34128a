//! The directory client: search-then-bind with the search account, or AD
//! direct bind (`bind_as`), then the user's attributes and groups.
//!
//! - TLS only: `ldaps://`, or `ldap://` with StartTLS; a plain URL is
//!   refused here as well as by `check`. rustls with the system roots or
//!   `ca_file`.
//! - URLs are tried in order, each with `timeout` for connecting (TLS and
//!   StartTLS included); every operation has `timeout` too. Nothing
//!   answering at all is [`DirectoryError::Unavailable`] (a 503 page).
//! - The search account's connections are pooled ([`POOL_SIZE`] bound
//!   connections, each multiplexed by ldap3, reopened when they fail). A
//!   user's bind always gets a connection of its own, closed afterwards, so
//!   a pooled connection never changes identity.
//! - The password: refused when empty before any bind (RFC 4513 §5.1.2: a
//!   simple bind with an empty password is an unauthenticated bind that
//!   "succeeds"); sent only in the bind request; never logged. The caller
//!   owns it as [`Password`], zeroized on drop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ldap3::{
    Ldap, LdapConnAsync, LdapConnSettings, ResultEntry, Scope, SearchEntry, SearchOptions,
};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use zeroize::Zeroizing;

use super::escape;
use super::settings::{LdapGroups, LdapSettings};

/// Search-account connections kept open per connection.
pub const POOL_SIZE: usize = 4;

/// Longest login accepted (a UPN is at most 1024 characters in AD, an
/// email 254 bytes); longer input is refused like a wrong password.
pub const MAX_LOGIN_BYTES: usize = 512;

/// Longest password accepted (AD: 256 characters).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Most groups read for one user.
const MAX_GROUPS: i32 = 2000;

/// LDAP_MATCHING_RULE_IN_CHAIN: AD's transitive membership rule.
pub const IN_CHAIN: &str = "1.2.840.113556.1.4.1941";

/// A typed password: zeroized when dropped; `Debug` never shows it.
pub struct Password(Zeroizing<String>);

impl Password {
    pub fn new(p: String) -> Password {
        Password(Zeroizing::new(p))
    }
    fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A user the directory vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    pub dn: String,
    /// The stable id (objectGUID as a lowercase hyphenated GUID, or
    /// entryUUID), without the connection prefix.
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub username: Option<String>,
    /// Names from `group_name_attribute`.
    pub groups: Vec<String>,
    /// How long the password stays valid, when the directory said so: the
    /// password policy control's `timeBeforeExpiration` on the user's bind
    /// (OpenLDAP ppolicy, sent only within its `pwdExpireWarning`), or AD's
    /// `msDS-UserPasswordExpiryTimeComputed`. None: never expires, or not
    /// said.
    pub password_expires_in: Option<Duration>,
}

/// A login resolved to its directory entry (search-then-bind) before the
/// user's bind: the caller can count failures under the entry, whatever
/// spelling of the login found it (`ldap::limit::entry_key`).
pub struct Resolved {
    kind: ResolvedKind,
}

enum ResolvedKind {
    /// Search-then-bind: the entry, and the pooled connection that found it.
    Entry(Box<(Ldap, SearchEntry)>),
    /// Search-then-bind: nothing (or several entries) matched.
    Unknown,
    /// Direct bind: the entry is known only after the bind.
    Direct,
}

impl Resolved {
    /// The DN of the entry the login names, when known before the bind.
    pub fn dn(&self) -> Option<&str> {
        match &self.kind {
            ResolvedKind::Entry(b) => Some(b.1.dn.as_str()),
            _ => None,
        }
    }
}

/// An account state the directory reported on bind (AD's `data` sub-codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountState {
    PasswordExpired,
    MustChangePassword,
    Locked,
    Disabled,
    AccountExpired,
    LogonHours,
    Workstation,
    /// Refused without detail (unwillingToPerform, constraintViolation:
    /// OpenLDAP's ppolicy and similar).
    Refused,
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// Unknown user, wrong password, empty password, ambiguous login: one
    /// answer for all, so the form cannot tell which accounts exist.
    #[error("unknown user or wrong password")]
    InvalidCredentials,
    #[error("the account cannot sign in now: {0:?}")]
    Account(AccountState),
    /// The user's entry has no usable `attributes.user_id`.
    #[error("the user's entry has no usable {0} attribute")]
    NoUserId(String),
    /// No URL answered (connect, TLS, timeout).
    #[error("no directory server answered: {0}")]
    Unavailable(String),
    /// A server answered, but the search account or a search failed: a
    /// configuration problem (the detail says which).
    #[error("{0}")]
    Directory(String),
}

impl DirectoryError {
    /// Short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            DirectoryError::InvalidCredentials => "invalid_credentials",
            DirectoryError::Account(_) => "account_state",
            DirectoryError::NoUserId(_) => "missing_user_id",
            DirectoryError::Unavailable(_) => "directory_unavailable",
            DirectoryError::Directory(_) => "directory_error",
        }
    }
}

/// One `type = "ldap"` connection's directory.
pub struct Directory {
    cfg: Arc<LdapSettings>,
    tls: Arc<rustls::ClientConfig>,
    pool: Vec<tokio::sync::Mutex<Option<Ldap>>>,
    next: AtomicUsize,
}

impl Directory {
    /// Fails when `ca_file` cannot be read or holds no certificate.
    pub fn new(cfg: Arc<LdapSettings>) -> Result<Directory, String> {
        let roots = match &cfg.ca_file {
            Some(path) => load_ca(path)?,
            None => {
                let native = rustls_native_certs::load_native_certs();
                let mut roots = RootCertStore::empty();
                roots.add_parsable_certificates(native.certs);
                roots
            }
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS versions: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Directory {
            cfg,
            tls: Arc::new(tls),
            pool: (0..POOL_SIZE)
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            next: AtomicUsize::new(0),
        })
    }

    pub fn settings(&self) -> &LdapSettings {
        &self.cfg
    }

    /// Checks `login` and `password` against the directory:
    /// [`Directory::resolve`] then [`Directory::finish`].
    pub async fn authenticate(
        &self,
        login: &str,
        password: &Password,
    ) -> Result<DirectoryUser, DirectoryError> {
        let resolved = self.resolve(login, password).await?;
        self.finish(resolved, login, password).await
    }

    /// The first half of a sign-in, before any bind as the user: the input
    /// checks, and (search-then-bind) the search for the login's entry.
    pub async fn resolve(
        &self,
        login: &str,
        password: &Password,
    ) -> Result<Resolved, DirectoryError> {
        // Before any bind: an empty password would be an anonymous bind.
        // So could one that starts with NUL at a server that reads the
        // password up to its first NUL before that check (Samba's AD DC
        // reads `right\0anything` as `right`); no browser types a NUL.
        if password.is_empty()
            || password.expose().contains('\0')
            || password.expose().len() > MAX_PASSWORD_BYTES
            || login.is_empty()
            || login.len() > MAX_LOGIN_BYTES
            || login.chars().any(char::is_control)
        {
            return Err(DirectoryError::InvalidCredentials);
        }
        if let Some(template) = &self.cfg.bind_as {
            // A name the failure limit cannot fold into its login is
            // refused before any connection (the answer of a wrong password).
            if direct_bind_name(template, login).is_none() {
                return Err(DirectoryError::InvalidCredentials);
            }
            return Ok(Resolved {
                kind: ResolvedKind::Direct,
            });
        }
        let base = self.cfg.user_base.as_deref().unwrap_or_default();
        let template = self.cfg.user_filter.as_deref().unwrap_or_default();
        let filter = escape::fill(template, "{login}", login, escape::filter_value);
        let kind = match self.find_user(base, &filter).await {
            Ok((search, Some(entry))) => ResolvedKind::Entry(Box::new((search, entry))),
            Ok((_, None)) | Err(DirectoryError::InvalidCredentials) => ResolvedKind::Unknown,
            Err(e) => return Err(e),
        };
        Ok(Resolved { kind })
    }

    /// The second half: the bind as the user, then the user's attributes
    /// and groups. An unknown login costs what a wrong password costs.
    pub async fn finish(
        &self,
        resolved: Resolved,
        login: &str,
        password: &Password,
    ) -> Result<DirectoryUser, DirectoryError> {
        match (resolved.kind, &self.cfg.bind_as) {
            (ResolvedKind::Direct, Some(template)) => {
                self.direct_bind(template, login, password).await
            }
            (ResolvedKind::Entry(found), None) => {
                let (mut search, entry) = *found;
                // The user's own connection: a pooled one never changes identity.
                let mut user = self.connect().await?;
                let bound = bind(&mut user, self.cfg.timeout, &entry.dn, password).await;
                let _ = user.unbind().await;
                let expires_in = bound?;
                let mut u = self.build_user(&mut search, entry).await?;
                u.password_expires_in = expires_in.or(u.password_expires_in);
                Ok(u)
            }
            _ => {
                self.imitate_user_bind().await;
                Err(DirectoryError::InvalidCredentials)
            }
        }
    }

    async fn direct_bind(
        &self,
        template: &str,
        login: &str,
        password: &Password,
    ) -> Result<DirectoryUser, DirectoryError> {
        let name = direct_bind_name(template, login).ok_or(DirectoryError::InvalidCredentials)?;
        let mut user = self.connect().await?;
        let result = async {
            let expires_in = bind(&mut user, self.cfg.timeout, &name, password).await?;
            // Read the user's own entry, as the user.
            let base = match &self.cfg.user_base {
                Some(b) => b.clone(),
                None => default_naming_context(&mut user, self.cfg.timeout).await?,
            };
            let filter = match nt4_name(template, &name) {
                // `DOMAIN\user`: AD bound this domain's or a trusted
                // domain's `user`. Only this domain's is read, by its
                // sAMAccountName (unique in a domain); another domain's
                // account is never taken for this domain's namesake.
                Some((domain, account)) => {
                    let netbios = netbios_domain(&mut user, self.cfg.timeout).await?;
                    if !domain.eq_ignore_ascii_case(&netbios) {
                        // What the user sent, not an outage (SPEC 9: a 4xx),
                        // and an account this connection does not know: the
                        // answer of an unknown user, so that the form tells
                        // nobody a password of an account it refuses is right.
                        tracing::info!(domain = %domain, directory = %netbios, "direct bind: the bind name's domain is not this directory's; users of other domains sign in with their user principal name");
                        return Err(DirectoryError::InvalidCredentials);
                    }
                    format!(
                        "(&(objectClass=user)(sAMAccountName={}))",
                        escape::filter_value(account)
                    )
                }
                None => {
                    let template = self
                        .cfg
                        .user_filter
                        .as_deref()
                        .unwrap_or("(userPrincipalName={login})");
                    escape::fill(template, "{login}", login, escape::filter_value)
                }
            };
            let mut attrs = self.user_attrs();
            attrs.extend(["userPrincipalName".into(), "sAMAccountName".into()]);
            let entry = find_one(&mut user, self.cfg.timeout, &base, &filter, &attrs)
                .await?
                .ok_or_else(|| {
                    // The directory took the name, the user filter does not
                    // find it: a name typed in another form (an implicit
                    // UPN), an account the filter leaves out, or a
                    // user_base/user_filter that misses users. Answered as
                    // an unknown user (as above).
                    tracing::info!(base = %base, "direct bind: the bind succeeded but the user filter finds no entry under user_base (a name typed in another form than the filter matches, an account it leaves out, or check user_base and user_filter)");
                    DirectoryError::InvalidCredentials
                })?;
            // The entry found must be the account that bound. The name AD
            // binds and the entry the user filter finds are two lookups: a
            // filter that also matches another attribute
            // (`(|(userPrincipalName={login})(mail={login}))`) reads
            // another user's entry when the typed name is one account's
            // implicit UPN (`sAMAccountName@domain`) and another's mail,
            // and a sign-in with the first one's password became the
            // second one's session (review 14).
            if nt4_name(template, &name).is_none()
                && !bound_as(&mut user, self.cfg.timeout, &base, template, &name, &entry).await?
            {
                tracing::warn!(base = %base, "direct bind: the entry the user filter found is not the account the name bound; sign-in refused (make user_filter match only the name the directory binds, such as userPrincipalName)");
                return Err(DirectoryError::InvalidCredentials);
            }
            let mut u = self.build_user(&mut user, entry).await?;
            u.password_expires_in = expires_in.or(u.password_expires_in);
            Ok(u)
        }
        .await;
        let _ = user.unbind().await;
        result
    }

    /// An unknown user costs what a wrong password costs: a new connection
    /// (TCP + TLS), one simple bind that makes the server check a password
    /// hash, an unbind. The bind is the search account's own, with its own
    /// (right) password: the typed password goes to no DN but the user's,
    /// no account's failure counter moves (a decoy DN with a wrong password
    /// could lock an account, or name one that exists), and the server does
    /// the same hash work as for the user's bind. Without a search account
    /// (anonymous search) only the connection is imitated.
    async fn imitate_user_bind(&self) {
        let Ok(mut c) = self.connect().await else {
            return;
        };
        if let (Some(dn), Some(pw)) = (&self.cfg.bind_dn, &self.cfg.bind_password) {
            let pw = Password::new(pw.expose_str().to_string());
            let _ = bind(&mut c, self.cfg.timeout, dn, &pw).await;
        }
        let _ = c.unbind().await;
    }

    fn user_attrs(&self) -> Vec<String> {
        let a = &self.cfg.attributes;
        let mut v = vec![
            a.user_id.clone(),
            a.email.clone(),
            a.name.clone(),
            a.username.clone(),
        ];
        if matches!(self.cfg.groups, LdapGroups::MemberOf { .. }) {
            v.push("memberOf".into());
        }
        // AD's constructed attribute (only returned when asked for by name);
        // other directories do not know it and return nothing.
        v.push(AD_PASSWORD_EXPIRY.into());
        v
    }

    /// The session's view of an entry; groups looked up on `conn`.
    async fn build_user(
        &self,
        conn: &mut Ldap,
        entry: SearchEntry,
    ) -> Result<DirectoryUser, DirectoryError> {
        let a = &self.cfg.attributes;
        let subject = user_id(&entry, &a.user_id)
            .ok_or_else(|| DirectoryError::NoUserId(a.user_id.clone()))?;
        let groups = self.groups(conn, &entry).await?;
        Ok(DirectoryUser {
            subject,
            email: text_attr(&entry, &a.email),
            name: text_attr(&entry, &a.name),
            username: text_attr(&entry, &a.username),
            groups,
            password_expires_in: text_attr(&entry, AD_PASSWORD_EXPIRY)
                .and_then(|v| ad_expires_in(&v, std::time::SystemTime::now())),
            dn: entry.dn,
        })
    }

    async fn groups(
        &self,
        conn: &mut Ldap,
        entry: &SearchEntry,
    ) -> Result<Vec<String>, DirectoryError> {
        let name_attr = self.cfg.group_name_attribute.as_str();
        let (base, filter) = match &self.cfg.groups {
            LdapGroups::None => return Ok(Vec::new()),
            LdapGroups::MemberOf { base } => {
                let mut names = Vec::new();
                for dn in text_attrs(entry, "memberOf") {
                    if base.as_deref().is_some_and(|b| !dn_is_under(&dn, b)) {
                        continue;
                    }
                    match rdn_value(&dn, name_attr) {
                        Some(n) => names.push(n),
                        // The name is not the DN's first RDN: read it.
                        None => {
                            if let Some(g) =
                                find_one_base(conn, self.cfg.timeout, &dn, name_attr).await?
                            {
                                names.extend(text_attr(&g, name_attr));
                            }
                        }
                    }
                }
                return Ok(dedup(names));
            }
            LdapGroups::MemberOfChain { base } => (
                base.clone(),
                format!("(member:{IN_CHAIN}:={})", escape::filter_value(&entry.dn)),
            ),
            LdapGroups::Search { base, filter } => (
                base.clone(),
                escape::fill(filter, "{dn}", &entry.dn, escape::filter_value),
            ),
        };
        let entries = search(
            conn,
            self.cfg.timeout,
            &base,
            &filter,
            &[name_attr],
            MAX_GROUPS,
        )
        .await?;
        Ok(dedup(
            entries
                .iter()
                .filter_map(|g| text_attr(g, name_attr))
                .collect(),
        ))
    }

    /// A bound search-account connection from the pool (opened and bound
    /// when the slot is empty or its connection has closed).
    async fn search_account(&self) -> Result<(usize, Ldap), DirectoryError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % POOL_SIZE;
        self.search_account_at(i).await
    }

    async fn search_account_at(&self, i: usize) -> Result<(usize, Ldap), DirectoryError> {
        let Some(slot) = self.pool.get(i) else {
            return Err(DirectoryError::Directory("pool index".into()));
        };
        let mut slot = slot.lock().await;
        if let Some(ldap) = slot.as_ref() {
            let mut ldap = ldap.clone();
            if !ldap.is_closed() {
                return Ok((i, ldap));
            }
        }
        *slot = None;
        let mut ldap = self.connect().await?;
        if let (Some(dn), Some(pw)) = (&self.cfg.bind_dn, &self.cfg.bind_password) {
            let pw = Password::new(pw.expose_str().to_string());
            bind(&mut ldap, self.cfg.timeout, dn, &pw).await.map_err(|e| match e {
                DirectoryError::Unavailable(_) => e,
                other => DirectoryError::Directory(format!(
                    "the search account (bind_dn) cannot bind: {other}; check bind_dn and bind_password_file"
                )),
            })?;
        }
        *slot = Some(ldap.clone());
        Ok((i, ldap))
    }

    /// A new connection to the first URL that answers.
    async fn connect(&self) -> Result<Ldap, DirectoryError> {
        let mut errors = Vec::new();
        for url in &self.cfg.urls {
            match self.connect_url(url).await {
                Ok(ldap) => return Ok(ldap),
                Err(e) => {
                    tracing::warn!(error = %e, "LDAP server not usable; trying the next URL");
                    errors.push(e);
                }
            }
        }
        Err(DirectoryError::Unavailable(errors.join("; ")))
    }

    /// A new connection to `url` (TLS established), or why not.
    async fn connect_url(&self, url: &url::Url) -> Result<Ldap, String> {
        let start_tls = match url.scheme() {
            "ldaps" => false,
            "ldap" if self.cfg.start_tls => true,
            _ => return Err(format!("{url}: plain LDAP is refused")),
        };
        let attempt = tokio::time::timeout(self.cfg.timeout, async {
            // Our own TCP connection, for TCP_NODELAY: ldap3 leaves Nagle's
            // algorithm on, and a request written in pieces then waits for
            // the server's delayed ACK (~40 ms per bind or search).
            let host = url.host_str().unwrap_or("localhost");
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = url.port().unwrap_or(if start_tls { 389 } else { 636 });
            let tcp = tokio::net::TcpStream::connect((host, port))
                .await
                .map_err(ldap3::LdapError::from)?;
            tcp.set_nodelay(true).map_err(ldap3::LdapError::from)?;
            let std = tcp.into_std().map_err(ldap3::LdapError::from)?;
            let settings = LdapConnSettings::new()
                .set_conn_timeout(self.cfg.timeout)
                .set_starttls(start_tls)
                .set_config(self.tls.clone())
                .set_std_stream(ldap3::StdStream::Tcp(std));
            LdapConnAsync::with_settings(settings, url.as_str()).await
        })
        .await;
        match attempt {
            Ok(Ok((conn, ldap))) => {
                tokio::spawn(async move {
                    if let Err(e) = conn.drive().await {
                        tracing::debug!(error = %e, "LDAP connection ended");
                    }
                });
                Ok(ldap)
            }
            Ok(Err(e)) => Err(format!("{url}: {e}")),
            Err(_) => Err(format!("{url}: no answer within {:?}", self.cfg.timeout)),
        }
    }

    /// `test-connection`: each URL on its own (connect and TLS).
    pub async fn probe_urls(&self) -> Vec<(String, Result<(), String>)> {
        let mut out = Vec::new();
        for url in &self.cfg.urls {
            let r = match self.connect_url(url).await {
                Ok(mut l) => {
                    let _ = l.unbind().await;
                    Ok(())
                }
                Err(e) => Err(e),
            };
            out.push((url.to_string(), r));
        }
        out
    }

    /// `test-connection`: binds the search account (None with `bind_as`).
    pub async fn probe_search_account(&self) -> Option<Result<(), DirectoryError>> {
        self.cfg.bind_as.is_none().then_some(())?;
        Some(self.search_account().await.map(|_| ()))
    }

    /// `test-connection`: the user `login` as the search account sees it,
    /// groups included; no bind as the user, no password.
    pub async fn lookup(&self, login: &str) -> Result<Option<DirectoryUser>, DirectoryError> {
        let base = self.cfg.user_base.as_deref().unwrap_or_default();
        let template = self.cfg.user_filter.as_deref().unwrap_or_default();
        let filter = escape::fill(template, "{login}", login, escape::filter_value);
        let (mut search, entry) = self.find_user(base, &filter).await?;
        match entry {
            Some(entry) => self.build_user(&mut search, entry).await.map(Some),
            None => Ok(None),
        }
    }

    /// The user search on a pooled search-account connection. A pooled
    /// connection the server closed while idle fails its first operation:
    /// that slot is reopened and the search tried once more.
    async fn find_user(
        &self,
        base: &str,
        filter: &str,
    ) -> Result<(Ldap, Option<SearchEntry>), DirectoryError> {
        let (slot, mut search) = self.search_account().await?;
        match find_one(
            &mut search,
            self.cfg.timeout,
            base,
            filter,
            &self.user_attrs(),
        )
        .await
        {
            Err(DirectoryError::Unavailable(e)) => {
                tracing::debug!(error = %e, "pooled LDAP connection failed; reopening it");
                self.forget(slot).await;
                let (_, mut search) = self.search_account_at(slot).await?;
                let entry = find_one(
                    &mut search,
                    self.cfg.timeout,
                    base,
                    filter,
                    &self.user_attrs(),
                )
                .await?;
                Ok((search, entry))
            }
            other => Ok((search, other?)),
        }
    }

    async fn forget(&self, slot: usize) {
        if let Some(s) = self.pool.get(slot) {
            *s.lock().await = None;
        }
    }
}

/// A simple bind; result codes mapped to what the user is told. On success:
/// the password policy control's time before the password expires, if sent.
async fn bind(
    ldap: &mut Ldap,
    timeout: Duration,
    name: &str,
    password: &Password,
) -> Result<Option<Duration>, DirectoryError> {
    if password.is_empty() {
        return Err(DirectoryError::InvalidCredentials);
    }
    // Asks OpenLDAP's ppolicy (and compatible servers) why a bind failed;
    // servers that do not know the control ignore it (not critical).
    let ppolicy = ldap3::controls::RawControl {
        ctype: PPOLICY_OID.to_string(),
        crit: false,
        val: None,
    };
    let res = ldap
        .with_timeout(timeout)
        .with_controls(ppolicy)
        .simple_bind(name, password.expose())
        .await
        .map_err(unavailable)?;
    let policy_values = || {
        res.ctrls
            .iter()
            .filter(|c| c.1.ctype == PPOLICY_OID)
            .filter_map(|c| c.1.val.as_deref())
    };
    let policy = policy_values().find_map(ppolicy_error);
    match res.rc {
        0 if policy == Some(AccountState::MustChangePassword) => {
            Err(DirectoryError::Account(AccountState::MustChangePassword))
        }
        0 => Ok(policy_values()
            .find_map(ppolicy_time_before_expiration)
            .map(Duration::from_secs)),
        49 => Err(match ad_state(&res.text).or(policy) {
            Some(state) => DirectoryError::Account(state),
            None => DirectoryError::InvalidCredentials,
        }),
        // invalidDNSyntax, noSuchObject: an unknown name, same answer.
        34 | 32 => Err(DirectoryError::InvalidCredentials),
        // unwillingToPerform / constraintViolation: OpenLDAP ppolicy lockout
        // and similar refusals without detail.
        53 | 19 => Err(DirectoryError::Account(AccountState::Refused)),
        rc => Err(DirectoryError::Directory(format!(
            "bind answered result code {rc}"
        ))),
    }
}

/// AD's sub-code in a bind error's diagnostic message
/// (`80090308: LdapErr: DSID-0C09030B, comment: AcceptSecurityContext error, data 775, v893`).
/// None for wrong password / unknown user (52e, 525) and anything unknown.
pub fn ad_state(text: &str) -> Option<AccountState> {
    let code = text
        .split(", ")
        .find_map(|part| part.trim().strip_prefix("data "))?;
    let code = code.trim().to_ascii_lowercase();
    Some(match code.as_str() {
        "530" => AccountState::LogonHours,
        "531" => AccountState::Workstation,
        "532" => AccountState::PasswordExpired,
        "533" => AccountState::Disabled,
        "701" => AccountState::AccountExpired,
        "773" => AccountState::MustChangePassword,
        "775" => AccountState::Locked,
        _ => return None,
    })
}

/// The Password Policy for LDAP Directories control
/// (draft-behera-ldap-password-policy).
const PPOLICY_OID: &str = "1.3.6.1.4.1.42.2.27.8.5.1";

/// The `error` of a password policy response control value:
/// `SEQUENCE { warning [0] ... OPTIONAL, error [1] ENUMERATED OPTIONAL }`.
/// Only the states a user can act on are mapped; others are None.
pub fn ppolicy_error(val: &[u8]) -> Option<AccountState> {
    let (&tag, rest) = val.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (len, mut body) = ber_len(rest)?;
    body = body.get(..len)?;
    while let Some((&t, rest)) = body.split_first() {
        let (l, rest) = ber_len(rest)?;
        let value = rest.get(..l)?;
        if t == 0x81 && l == 1 {
            return match value[0] {
                0 => Some(AccountState::PasswordExpired),
                1 => Some(AccountState::Locked),
                2 => Some(AccountState::MustChangePassword),
                _ => None,
            };
        }
        body = rest.get(l..)?;
    }
    None
}

/// The `warning`'s `timeBeforeExpiration` (seconds) of a password policy
/// response control value:
/// `SEQUENCE { warning [0] CHOICE { timeBeforeExpiration [0] INTEGER (0..maxInt), graceAuthNsRemaining [1] ... } OPTIONAL, error [1] ... OPTIONAL }`.
pub fn ppolicy_time_before_expiration(val: &[u8]) -> Option<u64> {
    let (&tag, rest) = val.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (len, body) = ber_len(rest)?;
    let mut body = body.get(..len)?;
    while let Some((&t, rest)) = body.split_first() {
        let (l, rest) = ber_len(rest)?;
        let value = rest.get(..l)?;
        // warning: [0] constructed (0xa0) holding the choice.
        if t == 0xa0 {
            let (&inner, rest) = value.split_first()?;
            let (il, rest) = ber_len(rest)?;
            let int = rest.get(..il)?;
            // timeBeforeExpiration [0] primitive INTEGER: non-negative, at
            // most 4 bytes (maxInt) after a possible leading zero.
            if inner != 0x80 || int.is_empty() || int.len() > 5 || int[0] & 0x80 != 0 {
                return None;
            }
            return Some(int.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)));
        }
        body = rest.get(l..)?;
    }
    None
}

/// AD's constructed attribute with the time the password expires.
pub const AD_PASSWORD_EXPIRY: &str = "msDS-UserPasswordExpiryTimeComputed";

/// Seconds between 1601-01-01 (Windows FILETIME) and 1970-01-01.
const FILETIME_UNIX_OFFSET: u64 = 11_644_473_600;

/// The time left before an AD password expires, from
/// `msDS-UserPasswordExpiryTimeComputed` (a FILETIME: 100 ns since 1601).
/// None for "never" (`0x7FFFFFFFFFFFFFFF`, or 0 and anything unparsable:
/// the bind itself says when the password must change).
pub fn ad_expires_in(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let ft: u64 = value.trim().parse().ok()?;
    if ft == 0 || ft >= 0x7FFF_FFFF_FFFF_FFFF {
        return None;
    }
    let unix = (ft / 10_000_000).checked_sub(FILETIME_UNIX_OFFSET)?;
    let now = now.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(unix.saturating_sub(now)))
}

/// A BER definite length: (length, the bytes after it).
fn ber_len(b: &[u8]) -> Option<(usize, &[u8])> {
    let (&first, rest) = b.split_first()?;
    if first < 0x80 {
        return Some((usize::from(first), rest));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return None;
    }
    let bytes = rest.get(..n)?;
    let len = bytes
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    Some((len, rest.get(n..)?))
}

fn unavailable(e: ldap3::LdapError) -> DirectoryError {
    DirectoryError::Unavailable(e.to_string())
}

/// Exactly one entry for `filter`: none is `Ok(None)`; several are refused
/// like an unknown user (and logged), never "the first one".
async fn find_one(
    conn: &mut Ldap,
    timeout: Duration,
    base: &str,
    filter: &str,
    attrs: &[String],
) -> Result<Option<SearchEntry>, DirectoryError> {
    let mut entries = search(conn, timeout, base, filter, attrs, 2).await?;
    match entries.len() {
        0 => Ok(None),
        1 => Ok(entries.pop()),
        _ => {
            tracing::warn!(
                base,
                "the user filter matched several entries; sign-in refused (make user_filter match one attribute that is unique)"
            );
            Err(DirectoryError::InvalidCredentials)
        }
    }
}

async fn find_one_base(
    conn: &mut Ldap,
    timeout: Duration,
    dn: &str,
    attr: &str,
) -> Result<Option<SearchEntry>, DirectoryError> {
    let res = conn
        .with_timeout(timeout)
        .search(dn, Scope::Base, "(objectClass=*)", vec![attr])
        .await
        .map_err(unavailable)?;
    Ok(res.0.into_iter().find(is_entry).map(SearchEntry::construct))
}

async fn search<S: AsRef<str> + Send + Sync>(
    conn: &mut Ldap,
    timeout: Duration,
    base: &str,
    filter: &str,
    attrs: &[S],
    limit: i32,
) -> Result<Vec<SearchEntry>, DirectoryError> {
    let attrs: Vec<&str> = attrs.iter().map(AsRef::as_ref).collect();
    let res = conn
        .with_timeout(timeout)
        .with_search_options(SearchOptions::new().sizelimit(limit))
        .search(base, Scope::Subtree, filter, attrs)
        .await
        .map_err(unavailable)?;
    let ldap3::SearchResult(entries, result) = res;
    let entries: Vec<SearchEntry> = entries
        .into_iter()
        .filter(is_entry)
        .map(SearchEntry::construct)
        .collect();
    match result.rc {
        0 => Ok(entries),
        // sizeLimitExceeded: more than asked for; the caller sees `limit`.
        4 => Ok(entries),
        // noSuchObject: the base does not exist.
        32 => Err(DirectoryError::Directory(format!(
            "the search base {base:?} does not exist; check user_base / group_base"
        ))),
        rc => Err(DirectoryError::Directory(format!(
            "a search under {base:?} answered result code {rc} ({})",
            result.text
        ))),
    }
}

fn is_entry(e: &ResultEntry) -> bool {
    !e.is_ref() && !e.is_intermediate()
}

async fn default_naming_context(
    conn: &mut Ldap,
    timeout: Duration,
) -> Result<String, DirectoryError> {
    let res = conn
        .with_timeout(timeout)
        .search(
            "",
            Scope::Base,
            "(objectClass=*)",
            vec!["defaultNamingContext"],
        )
        .await
        .map_err(unavailable)?;
    res.0
        .into_iter()
        .find(is_entry)
        .map(SearchEntry::construct)
        .and_then(|e| text_attr(&e, "defaultNamingContext"))
        .ok_or_else(|| {
            DirectoryError::Directory(
                "the directory has no defaultNamingContext; set user_base".into(),
            )
        })
}

/// The bind name of a direct bind (`bind_as`) for what the user typed, or
/// None when it is not to be bound.
///
/// Inside a DN template the login is one escaped RDN value: one name form.
/// Otherwise (`{login}`, `CORP\{login}`, `{login}@corp.example`) the name
/// must be a UPN (`@`) or a down-level name (`\`), the two forms
/// `limit::canonical_login` folds into one login, and hold no `=` or `/`.
/// Active Directory binds one account under many more names (MS-ADTS
/// 5.1.1.1.1: a DN, its canonical name `corp.example/Users/Alice`, its
/// display name, SID, objectGUID, a servicePrincipalName, ...); each of
/// them would be a login of its own for the failure limit, with its own
/// budget of failed binds against the same account, which multiplies the
/// guesses per account and lets the directory's lockout be reached through
/// realmgate (SPEC 9 says it trips first). With a direct bind the account a
/// failed bind meant is never known, so those names are not bound at all.
pub fn direct_bind_name(template: &str, login: &str) -> Option<String> {
    if template.contains('=') {
        return Some(escape::fill(template, "{login}", login, escape::dn_value));
    }
    let name = template.replace("{login}", login);
    let one_of_two_forms = name.contains(['@', '\\']) && !name.contains(['=', '/']);
    one_of_two_forms.then_some(name)
}

/// A direct bind name of the form `DOMAIN\account` (a down-level logon
/// name), split; None for a UPN or a DN template.
pub fn nt4_name<'n>(template: &str, name: &'n str) -> Option<(&'n str, &'n str)> {
    if template.contains('=') {
        return None;
    }
    let (domain, account) = name.split_once('\\')?;
    (!domain.is_empty() && !account.is_empty() && !account.contains('\\'))
        .then_some((domain, account))
}

/// Whether `entry` is the account a direct bind with `name` bound.
///
/// A DN template bound a DN: the entry's, RDN by RDN. A UPN (what
/// `direct_bind_name` lets through without `\`) is, as Active Directory
/// resolves it (MS-ADTS 5.1.1.1.1), an account's explicit
/// `userPrincipalName`, else the implicit `sAMAccountName@<DNS name of its
/// domain>`: the entry must carry the name in the first form, or in the
/// second while no account under `base` has it in the first (that one
/// would have bound). Not RFC 4532 "Who am I?": Samba's AD DC does not
/// answer it.
async fn bound_as(
    conn: &mut Ldap,
    timeout: Duration,
    base: &str,
    template: &str,
    name: &str,
    entry: &SearchEntry,
) -> Result<bool, DirectoryError> {
    if template.contains('=') {
        return Ok(rdns(name) == rdns(&entry.dn));
    }
    let same = |a: &str| a.to_lowercase() == name.to_lowercase();
    if text_attr(entry, "userPrincipalName").is_some_and(|upn| same(&upn)) {
        return Ok(true);
    }
    let domain: Vec<String> = rdns(&entry.dn)
        .iter()
        .filter_map(|rdn| rdn.strip_prefix("dc=").map(str::to_string))
        .collect();
    let implicit = text_attr(entry, "sAMAccountName")
        .is_some_and(|sam| !domain.is_empty() && same(&format!("{sam}@{}", domain.join("."))));
    if !implicit {
        return Ok(false);
    }
    let filter = format!("(userPrincipalName={})", escape::filter_value(name));
    let explicit = search(conn, timeout, base, &filter, &["objectClass"], 1).await?;
    Ok(explicit.is_empty())
}

/// This directory's NetBIOS domain name: the `nETBIOSName` of the crossRef
/// of the default naming context (AD, Samba).
async fn netbios_domain(conn: &mut Ldap, timeout: Duration) -> Result<String, DirectoryError> {
    let res = conn
        .with_timeout(timeout)
        .search(
            "",
            Scope::Base,
            "(objectClass=*)",
            vec!["defaultNamingContext", "configurationNamingContext"],
        )
        .await
        .map_err(unavailable)?;
    let root = res.0.into_iter().find(is_entry).map(SearchEntry::construct);
    let (Some(nc), Some(config)) = (
        root.as_ref()
            .and_then(|e| text_attr(e, "defaultNamingContext")),
        root.as_ref()
            .and_then(|e| text_attr(e, "configurationNamingContext")),
    ) else {
        return Err(DirectoryError::Directory(
            "a DOMAIN\\user login needs Active Directory's naming contexts in the rootDSE".into(),
        ));
    };
    let filter = format!(
        "(&(objectClass=crossRef)(nCName={})(nETBIOSName=*))",
        escape::filter_value(&nc)
    );
    let entries = search(
        conn,
        timeout,
        &format!("CN=Partitions,{config}"),
        &filter,
        &["nETBIOSName"],
        2,
    )
    .await?;
    entries
        .first()
        .and_then(|e| text_attr(e, "nETBIOSName"))
        .ok_or_else(|| {
            DirectoryError::Directory(
                "the directory does not say its NetBIOS domain name; sign in with the user principal name".into(),
            )
        })
}

/// The entry's first value of `name` as text (attribute names compare
/// case-insensitively).
pub fn text_attr(entry: &SearchEntry, name: &str) -> Option<String> {
    text_attrs(entry, name).into_iter().next()
}

fn text_attrs(entry: &SearchEntry, name: &str) -> Vec<String> {
    entry
        .attrs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.iter().cloned())
        .filter(|v| !v.is_empty())
        .collect()
}

/// The raw bytes of the first value of `name` (ldap3 puts values that are
/// not UTF-8 in `bin_attrs`, others in `attrs`: a GUID may be either).
fn raw_attr(entry: &SearchEntry, name: &str) -> Option<Vec<u8>> {
    let bin = entry
        .bin_attrs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.iter().cloned());
    let text = entry
        .attrs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.iter().map(|s| s.clone().into_bytes()));
    bin.chain(text).find(|v| !v.is_empty())
}

/// The user id (SPEC 6.1): `objectGUID` in its usual lowercase hyphenated
/// form, `entryUUID` lowercased, any other attribute as text.
pub fn user_id(entry: &SearchEntry, attr: &str) -> Option<String> {
    let raw = raw_attr(entry, attr)?;
    if attr.eq_ignore_ascii_case("objectGUID") {
        return guid_string(&raw);
    }
    let text = String::from_utf8(raw).ok()?;
    let text = text.trim();
    if text.is_empty() || text.chars().any(char::is_control) {
        return None;
    }
    if attr.eq_ignore_ascii_case("entryUUID") {
        Some(text.to_ascii_lowercase())
    } else {
        Some(text.to_string())
    }
}

/// A 16-byte GUID as Windows writes it: the first three fields are
/// little-endian (`Data1` u32, `Data2` u16, `Data3` u16), the last eight
/// bytes in order.
pub fn guid_string(b: &[u8]) -> Option<String> {
    let b: &[u8; 16] = b.try_into().ok()?;
    Some(format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    ))
}

/// The value of the DN's first RDN when its type is `attr`
/// (`CN=HR Admins\, Berlin,OU=Groups,...` -> `HR Admins, Berlin`). None
/// when the first RDN is another attribute or multi-valued.
pub fn rdn_value(dn: &str, attr: &str) -> Option<String> {
    let (ty, rest) = dn.split_once('=')?;
    if !ty.trim().eq_ignore_ascii_case(attr) {
        return None;
    }
    let mut out = Vec::new();
    // Which bytes of `out` came from an escape: only unescaped spaces
    // around the value are insignificant (`CN=\ HR Admins` is not `HR Admins`).
    let mut escaped = Vec::new();
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                let next = *b.get(i + 1)?;
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(next);
                        i += 2;
                    }
                }
                escaped.push(true);
            }
            b',' => break,
            b'+' => return None,
            c => {
                out.push(c);
                escaped.push(false);
                i += 1;
            }
        }
    }
    let plain_space = |i: usize| out[i] == b' ' && !escaped[i];
    let start = (0..out.len())
        .find(|&i| !plain_space(i))
        .unwrap_or(out.len());
    let end = (start..out.len())
        .rfind(|&i| !plain_space(i))
        .map_or(start, |i| i + 1);
    let s = String::from_utf8(out[start..end].to_vec()).ok()?;
    (!s.is_empty()).then_some(s)
}

/// True when `dn` is `base` or an entry under it, comparing RDNs without
/// case and without the spaces around `,` and `=` that some servers write.
pub fn dn_is_under(dn: &str, base: &str) -> bool {
    let (dn, base) = (rdns(dn), rdns(base));
    !base.is_empty() && dn.len() >= base.len() && dn[dn.len() - base.len()..] == base[..]
}

/// The RDNs of a DN, split at unescaped commas only (`CN=a\,OU=x` is one
/// RDN), lowercased, without the spaces around `=`.
fn rdns(dn: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = dn.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                current.push(c);
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            ',' => out.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    out.push(current);
    out.iter()
        .map(|rdn| {
            let rdn = match rdn.split_once('=') {
                Some((ty, value)) => format!("{}={}", ty.trim(), value.trim()),
                None => rdn.trim().to_string(),
            };
            rdn.to_lowercase()
        })
        .filter(|rdn| !rdn.is_empty())
        .collect()
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

fn load_ca(path: &std::path::Path) -> Result<RootCertStore, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("ca_file {}: cannot be read ({e})", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("ca_file {}: is not valid PEM ({e})", path.display()))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!(
            "ca_file {}: contains no usable CA certificate",
            path.display()
        ));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests;
