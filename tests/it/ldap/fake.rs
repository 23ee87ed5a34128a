//! An in-process fake LDAP directory over TLS (ldaps) for the hermetic
//! tier: users, nested groups, AD-style bind sub-codes, and a record of
//! every bind and search filter it received. Built on `ldap3_proto` (the
//! BER codec); the directory logic is this file's few lines.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindResponse, LdapFilter, LdapMsg, LdapOp, LdapPartialAttribute, LdapResult,
    LdapResultCode, LdapSearchResultEntry, LdapSearchScope,
};
use ldap3_proto::LdapCodec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};

pub const BASE: &str = "dc=corp,dc=test";
pub const SVC_DN: &str = "cn=svc,ou=service,dc=corp,dc=test";
pub const SVC_PW: &str = "svc-secret";

#[derive(Clone, Debug)]
pub struct FakeUser {
    pub dn: String,
    pub upn: String,
    pub password: String,
    pub guid: [u8; 16],
    pub mail: String,
    pub name: String,
    pub sam: String,
    /// AD's `data` sub-code answered to every bind of this user.
    pub ad_code: Option<&'static str>,
    /// How long this user's binds take to be answered.
    pub bind_delay: Option<Duration>,
    /// `msDS-UserPasswordExpiryTimeComputed` (a FILETIME), if any.
    pub password_expiry: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct FakeGroup {
    pub dn: String,
    pub cn: String,
    /// Member DNs (users or groups).
    pub members: Vec<String>,
}

#[derive(Default, Debug)]
pub struct Seen {
    /// Bind DNs with whether a password was sent (never the password).
    pub binds: Vec<(String, bool)>,
    pub filters: Vec<LdapFilter>,
    /// Slow binds (`bind_delay`) received, counted before their wait.
    pub binds_started: usize,
}

pub struct FakeLdap {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Seen>>,
    pub ca_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeLdap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeLdap {
    pub fn url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.addr.port())
    }

    /// User binds seen (not the service account).
    pub fn user_binds(&self) -> usize {
        self.seen
            .lock()
            .unwrap()
            .binds
            .iter()
            .filter(|(dn, _)| dn != SVC_DN)
            .count()
    }

    pub async fn start(users: Vec<FakeUser>, groups: Vec<FakeGroup>) -> FakeLdap {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, cert.cert.pem()).unwrap();
        let key = rustls_pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let state = Arc::new((users, groups));
        let task = {
            let seen = seen.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let acceptor = acceptor.clone();
                    let seen = seen.clone();
                    let state = state.clone();
                    tokio::spawn(async move {
                        let Ok(Ok(tls)) =
                            tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                                .await
                        else {
                            return;
                        };
                        serve(tls, &state.0, &state.1, &seen).await;
                    });
                }
            })
        };
        FakeLdap {
            addr,
            seen,
            ca_file,
            _dir: dir,
            task,
        }
    }
}

async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut io: S,
    users: &[FakeUser],
    groups: &[FakeGroup],
    seen: &Mutex<Seen>,
) {
    let mut codec = LdapCodec::default();
    let mut buf = BytesMut::new();
    loop {
        let msg = loop {
            match codec.decode(&mut buf) {
                Ok(Some(m)) => break m,
                Ok(None) => {}
                Err(_) => return,
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(Duration::from_secs(30), io.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        };
        if let LdapOp::BindRequest(b) = &msg.op {
            let delay = users
                .iter()
                .find(|u| u.dn.eq_ignore_ascii_case(&b.dn) || u.upn.eq_ignore_ascii_case(&b.dn))
                .and_then(|u| u.bind_delay);
            if let Some(d) = delay {
                // Seen before the wait: a test can act while the bind is slow.
                seen.lock().unwrap().binds_started += 1;
                tokio::time::sleep(d).await;
            }
        }
        let replies = answer(msg, users, groups, seen);
        let Some(replies) = replies else { return };
        let mut out = BytesMut::new();
        for r in replies {
            if codec.encode(r, &mut out).is_err() {
                return;
            }
        }
        if io.write_all(&out).await.is_err() {
            return;
        }
    }
}

fn result(code: LdapResultCode, message: &str) -> LdapResult {
    LdapResult {
        code,
        matcheddn: String::new(),
        message: message.into(),
        referral: Vec::new(),
    }
}

fn answer(
    msg: LdapMsg,
    users: &[FakeUser],
    groups: &[FakeGroup],
    seen: &Mutex<Seen>,
) -> Option<Vec<LdapMsg>> {
    let id = msg.msgid;
    match msg.op {
        LdapOp::UnbindRequest => None,
        LdapOp::BindRequest(b) => {
            let pw = match &b.cred {
                LdapBindCred::Simple(p) => p.clone(),
                _ => String::new(),
            };
            seen.lock()
                .unwrap()
                .binds
                .push((b.dn.clone(), !pw.is_empty()));
            let ok = LdapBindResponse::new_success("");
            let bad = |text: &str| LdapBindResponse {
                res: result(LdapResultCode::InvalidCredentials, text),
                saslcreds: None,
            };
            let ad = |c: &str| {
                format!("80090308: LdapErr: DSID-0C09030B, comment: AcceptSecurityContext error, data {c}, v893")
            };
            let res = if pw.is_empty() {
                // RFC 4513 5.1.2: an unauthenticated bind "succeeds".
                ok
            } else if b.dn == SVC_DN {
                if pw == SVC_PW {
                    ok
                } else {
                    bad(&ad("52e"))
                }
            } else if let Some(u) = users
                .iter()
                .find(|u| u.dn.eq_ignore_ascii_case(&b.dn) || u.upn.eq_ignore_ascii_case(&b.dn))
                .or_else(|| {
                    users.iter().find(|u| {
                        // AD's implicit UPN (`sAMAccountName@<DNS domain>`),
                        // when no explicit one has that name.
                        format!("{}@corp.test", u.sam).eq_ignore_ascii_case(&b.dn)
                        // A down-level name: any domain (a trusted one's too).
                        || b.dn
                            .split_once('\\')
                            .is_some_and(|(_, sam)| sam.eq_ignore_ascii_case(&u.sam))
                    })
                })
            {
                match (u.ad_code, pw == u.password) {
                    (Some(code), _) => bad(&ad(code)),
                    (None, true) => ok,
                    (None, false) => bad(&ad("52e")),
                }
            } else {
                bad(&ad("525"))
            };
            Some(vec![LdapMsg::new(id, LdapOp::BindResponse(res))])
        }
        LdapOp::SearchRequest(s) => {
            seen.lock().unwrap().filters.push(s.filter.clone());
            let mut out = Vec::new();
            let entries = all_entries(users, groups);
            for (dn, attrs) in entries {
                let in_scope = match s.scope {
                    LdapSearchScope::Base => dn.eq_ignore_ascii_case(&s.base),
                    _ => dn
                        .to_ascii_lowercase()
                        .ends_with(&s.base.to_ascii_lowercase()),
                };
                if !in_scope || !matches(&s.filter, &dn, &attrs, groups) {
                    continue;
                }
                let attributes = attrs
                    .into_iter()
                    .filter(|(k, _)| {
                        s.attrs.is_empty() || s.attrs.iter().any(|a| a.eq_ignore_ascii_case(k))
                    })
                    .map(|(k, v)| LdapPartialAttribute { atype: k, vals: v })
                    .collect();
                out.push(LdapMsg::new(
                    id,
                    LdapOp::SearchResultEntry(LdapSearchResultEntry { dn, attributes }),
                ));
            }
            out.push(LdapMsg::new(
                id,
                LdapOp::SearchResultDone(result(LdapResultCode::Success, "")),
            ));
            Some(out)
        }
        _ => Some(vec![]),
    }
}

type Attrs = Vec<(String, Vec<Vec<u8>>)>;

fn all_entries(users: &[FakeUser], groups: &[FakeGroup]) -> Vec<(String, Attrs)> {
    let mut v = Vec::new();
    for u in users {
        let member_of: Vec<Vec<u8>> = groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m.eq_ignore_ascii_case(&u.dn)))
            .map(|g| g.dn.clone().into_bytes())
            .collect();
        v.push((
            u.dn.clone(),
            vec![
                ("objectClass".into(), vec![b"user".to_vec()]),
                ("objectGUID".into(), vec![u.guid.to_vec()]),
                ("userPrincipalName".into(), vec![u.upn.clone().into_bytes()]),
                ("mail".into(), vec![u.mail.clone().into_bytes()]),
                ("displayName".into(), vec![u.name.clone().into_bytes()]),
                ("sAMAccountName".into(), vec![u.sam.clone().into_bytes()]),
                ("memberOf".into(), member_of),
                (
                    "msDS-UserPasswordExpiryTimeComputed".into(),
                    u.password_expiry
                        .map(|v| v.to_string().into_bytes())
                        .into_iter()
                        .collect(),
                ),
            ],
        ));
    }
    // The rootDSE and this domain's crossRef (its NetBIOS name: CORP).
    v.push((
        String::new(),
        vec![
            ("objectClass".into(), vec![b"top".to_vec()]),
            (
                "defaultNamingContext".into(),
                vec![BASE.as_bytes().to_vec()],
            ),
            (
                "configurationNamingContext".into(),
                vec![format!("cn=configuration,{BASE}").into_bytes()],
            ),
        ],
    ));
    v.push((
        format!("cn=corp,cn=partitions,cn=configuration,{BASE}"),
        vec![
            ("objectClass".into(), vec![b"crossRef".to_vec()]),
            ("nCName".into(), vec![BASE.as_bytes().to_vec()]),
            ("nETBIOSName".into(), vec![b"CORP".to_vec()]),
        ],
    ));
    for g in groups {
        v.push((
            g.dn.clone(),
            vec![
                ("objectClass".into(), vec![b"group".to_vec()]),
                ("cn".into(), vec![g.cn.clone().into_bytes()]),
                (
                    "member".into(),
                    g.members.iter().map(|m| m.clone().into_bytes()).collect(),
                ),
            ],
        ));
    }
    v
}

fn values<'a>(attrs: &'a Attrs, name: &str) -> Vec<&'a [u8]> {
    attrs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.iter().map(Vec::as_slice))
        .collect()
}

/// Is `group` (a DN) reached from `member` through `member` links, transitively?
fn in_chain(group: &str, member: &str, groups: &[FakeGroup], depth: usize) -> bool {
    if depth > 16 {
        return false;
    }
    let Some(g) = groups.iter().find(|g| g.dn.eq_ignore_ascii_case(group)) else {
        return false;
    };
    g.members
        .iter()
        .any(|m| m.eq_ignore_ascii_case(member) || in_chain(m, member, groups, depth + 1))
}

fn matches(f: &LdapFilter, dn: &str, attrs: &Attrs, groups: &[FakeGroup]) -> bool {
    match f {
        LdapFilter::And(v) => v.iter().all(|f| matches(f, dn, attrs, groups)),
        LdapFilter::Or(v) => v.iter().any(|f| matches(f, dn, attrs, groups)),
        LdapFilter::Not(f) => !matches(f, dn, attrs, groups),
        LdapFilter::Equality(a, val) => values(attrs, a)
            .iter()
            .any(|v| v.eq_ignore_ascii_case(val.as_bytes())),
        LdapFilter::Present(a) => !values(attrs, a).is_empty(),
        LdapFilter::Extensible(m) => {
            m.matching_rule.as_deref() == Some("1.2.840.113556.1.4.1941")
                && m.type_
                    .as_deref()
                    .is_some_and(|t| t.eq_ignore_ascii_case("member"))
                && in_chain(dn, &m.match_value, groups, 0)
        }
        // Substring, ranges, approx: this directory answers nothing for them.
        _ => false,
    }
}
