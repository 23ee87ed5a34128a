//! Real tier: Debian's slapd, started by the test on loopback with its own
//! config (`slapd -f`), the memberof and ppolicy overlays, a TLS
//! certificate made at test time, users, nested groups, a locked account
//! (ppolicy lockout after 3 failures), a password the admin reset (must
//! change) and an expired password. Needs `slapd` and `ldap-utils`
//! (scripts/test.sh installs them); without them the test fails saying so.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::{
    route, wait_listening, with_fresh_port, EchoUpstream, ReservedPort, TestGateway, SECRET,
};

const SLAPD: &str = "/usr/sbin/slapd";
const BASE: &str = "dc=corp,dc=test";
const ADMIN_DN: &str = "cn=admin,dc=corp,dc=test";
const ADMIN_PW: &str = "admin-secret";

/// A running slapd; killed (by its PID) and its directory removed on drop.
pub struct Slapd {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
    _port: ReservedPort,
    /// The plain `ldap://` listener (for StartTLS).
    pub plain_port: u16,
    _plain: ReservedPort,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Slapd {
    pub fn url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.port)
    }

    /// `ldap://` (StartTLS) on loopback.
    pub fn start_tls_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.plain_port)
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    fn ldapi(&self) -> String {
        ldapi_url(self.dir.path())
    }

    /// Runs an ldap-utils command as the directory admin over ldapi.
    fn admin(&self, tool: &str, ldif: &str) {
        let mut child = Command::new(tool)
            .args(["-H", &self.ldapi(), "-x", "-D", ADMIN_DN, "-w", ADMIN_PW])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{tool}: {e} (install ldap-utils)"));
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ldif.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{tool} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn start() -> Slapd {
        assert!(
            Path::new(SLAPD).exists(),
            "the LDAP real tier needs Debian's slapd and ldap-utils: apt-get install -y slapd ldap-utils (scripts/test.sh does this)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("db")).unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap();
        std::fs::write(d.join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(d.join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
        std::fs::write(d.join("slapd.conf"), slapd_conf(d)).unwrap();
        // Offline load: what only slapadd may write (an old pwdChangedTime).
        std::fs::write(d.join("offline.ldif"), OFFLINE_LDIF).unwrap();
        let out = Command::new("/usr/sbin/slapadd")
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .arg("-l")
            .arg(d.join("offline.ldif"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (child, port, plain) = with_fresh_port("slapd", |port| {
            let plain = ReservedPort::new();
            let urls = format!(
                "ldaps://127.0.0.1:{}/ ldap://127.0.0.1:{}/ {}",
                port.port(),
                plain.port(),
                ldapi_url(d)
            );
            let mut child = Command::new(SLAPD)
                .arg("-f")
                .arg(d.join("slapd.conf"))
                .args(["-h", &urls, "-d", "0"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| e.to_string())?;
            match wait_listening(&mut child, port.port(), Duration::from_secs(20)) {
                Ok(()) => Ok((child, port, plain)),
                Err(e) => {
                    let _ = child.kill();
                    let out = child
                        .wait_with_output()
                        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                        .unwrap_or_default();
                    Err(format!("{e:?}: {out}"))
                }
            }
        });
        let slapd = Slapd {
            child,
            dir,
            port: port.port(),
            _port: port,
            plain_port: plain.port(),
            _plain: plain,
        };
        // Online load, through the overlays (memberOf is maintained).
        slapd.admin("ldapadd", ONLINE_LDIF);
        slapd.admin("ldapmodify", "dn: uid=dave,ou=people,dc=corp,dc=test\nchangetype: modify\nreplace: pwdReset\npwdReset: TRUE\n");
        slapd
    }
}

fn ldapi_url(d: &Path) -> String {
    let path = d.join("ldapi");
    let enc: String =
        url::form_urlencoded::byte_serialize(path.to_string_lossy().as_bytes()).collect();
    format!("ldapi://{enc}")
}

fn slapd_conf(d: &Path) -> String {
    let d = d.display();
    format!(
        r#"include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload ppolicy
pidfile {d}/slapd.pid
TLSCertificateFile {d}/cert.pem
TLSCertificateKeyFile {d}/key.pem
database mdb
maxsize 10485760
suffix "{BASE}"
rootdn "{ADMIN_DN}"
rootpw {ADMIN_PW}
directory {d}/db
overlay memberof
overlay ppolicy
ppolicy_default "cn=default,ou=policies,{BASE}"
ppolicy_use_lockout
access to attrs=userPassword by anonymous auth by * none
access to * by dn.exact="cn=svc,ou=service,{BASE}" read by self read by * none
"#
    )
}

const OFFLINE_LDIF: &str = "dn: dc=corp,dc=test
objectClass: dcObject
objectClass: organization
o: corp
dc: corp

dn: ou=policies,dc=corp,dc=test
objectClass: organizationalUnit
ou: policies

dn: cn=expiring,ou=policies,dc=corp,dc=test
objectClass: pwdPolicy
objectClass: device
cn: expiring
pwdAttribute: userPassword
pwdMaxAge: 60
pwdGraceAuthNLimit: 0

dn: ou=people,dc=corp,dc=test
objectClass: organizationalUnit
ou: people

dn: uid=erin,ou=people,dc=corp,dc=test
objectClass: inetOrgPerson
uid: erin
cn: Erin Expired
sn: Expired
mail: erin@corp.test
userPassword: erin-pw
pwdPolicySubentry: cn=expiring,ou=policies,dc=corp,dc=test
pwdChangedTime: 20200101000000Z
";

const ONLINE_LDIF: &str = "dn: ou=groups,dc=corp,dc=test
objectClass: organizationalUnit
ou: groups

dn: ou=service,dc=corp,dc=test
objectClass: organizationalUnit
ou: service

dn: cn=default,ou=policies,dc=corp,dc=test
objectClass: pwdPolicy
objectClass: device
cn: default
pwdAttribute: userPassword
pwdLockout: TRUE
pwdMaxFailure: 3
pwdLockoutDuration: 0
pwdMustChange: TRUE

dn: cn=warn,ou=policies,dc=corp,dc=test
objectClass: pwdPolicy
objectClass: device
cn: warn
pwdAttribute: userPassword
pwdMaxAge: 432000
pwdExpireWarning: 2592000

dn: cn=svc,ou=service,dc=corp,dc=test
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: svc
userPassword: svc-secret

dn: uid=alice,ou=people,dc=corp,dc=test
objectClass: inetOrgPerson
uid: alice
cn: Alice Example
sn: Example
displayName: Alice Example
mail: alice@corp.test
userPassword: correct horse

dn: uid=carol,ou=people,dc=corp,dc=test
objectClass: inetOrgPerson
uid: carol
cn: Carol Locked
sn: Locked
mail: carol@corp.test
userPassword: carol-pw

dn: uid=dave,ou=people,dc=corp,dc=test
objectClass: inetOrgPerson
uid: dave
cn: Dave Reset
sn: Reset
mail: dave@corp.test
userPassword: dave-pw

dn: uid=frank,ou=people,dc=corp,dc=test
objectClass: inetOrgPerson
uid: frank
cn: Frank Warned
sn: Warned
mail: frank@corp.test
userPassword: frank-pw
pwdPolicySubentry: cn=warn,ou=policies,dc=corp,dc=test

dn: cn=hr,ou=groups,dc=corp,dc=test
objectClass: groupOfNames
cn: hr
member: uid=alice,ou=people,dc=corp,dc=test

dn: cn=staff,ou=groups,dc=corp,dc=test
objectClass: groupOfNames
cn: staff
member: cn=hr,ou=groups,dc=corp,dc=test
";

fn config(slapd: &Slapd, upstream: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[admin]
listen = "127.0.0.1:0"

[session]
secret = "{SECRET}"

[[connection]]
name = "corp"
type = "ldap"
url = "{url}"
ca_file = "{ca}"
bind_dn = "cn=svc,ou=service,{BASE}"
bind_password = "svc-secret"
user_base = "ou=people,{BASE}"
user_filter = "(&(objectClass=inetOrgPerson)(|(uid={{login}})(mail={{login}})))"
attributes = {{ user_id = "entryUUID", email = "mail", name = "displayName", username = "uid" }}
home_realm_domains = ["corp.test"]
trusted_email = true
timeout = "5s"
max_failed_logins = 50
{extra}

{route}
"#,
        url = slapd.url(),
        ca = slapd.ca_file().display(),
        route = route("app", super::HOST, "/", upstream, ""),
    )
}

async fn sign_in(gw: &TestGateway, user: &str, pw: &str) -> (u16, String, reqwest::Client) {
    let b = super::browser(gw);
    let html = super::open_form(gw, &b, "?login_hint=x").await;
    let r = super::post(gw, &b, &super::csrf(&html), user, pw).await;
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default(), b)
}

#[tokio::test]
async fn openldap_signs_in_with_entry_uuid_groups_and_account_states() {
    let slapd = tokio::task::spawn_blocking(Slapd::start).await.unwrap();
    let up = EchoUpstream::start().await;
    let gw = TestGateway::start(&config(&slapd, &up.url(), "groups = \"memberof\"")).await;

    // Search-then-bind; the user id is the entryUUID, groups from memberOf.
    let (status, _, b) = sign_in(&gw, "alice@corp.test", "correct horse").await;
    assert_eq!(status, 302);
    let me: serde_json::Value = b
        .get(gw.url(super::HOST, "/.auth/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = me["user_id"].as_str().unwrap();
    let uuid = id.strip_prefix("corp:").expect("connection-scoped id");
    assert_eq!(uuid.len(), 36, "{id}");
    assert_eq!(uuid, uuid.to_ascii_lowercase());
    assert_eq!(
        me["groups"],
        serde_json::json!(["hr"]),
        "memberOf is direct: OpenLDAP has no in-chain rule"
    );
    assert_eq!(me["email"], "alice@corp.test");

    // Wrong password and unknown user: one message.
    let (s1, wrong, _) = sign_in(&gw, "alice", "nope").await;
    let (s2, unknown, _) = sign_in(&gw, "nobody", "nope").await;
    assert_eq!((s1, s2), (401, 401));
    assert!(wrong.contains("The user name or password is incorrect"));
    assert!(unknown.contains("The user name or password is incorrect"));

    // ppolicy: the admin reset dave's password (must change).
    let (s, must, _) = sign_in(&gw, "dave", "dave-pw").await;
    assert_eq!(s, 403, "{must}");
    assert!(must.contains("You must change your password"));
    // ppolicy: erin's password expired.
    let (s, expired, _) = sign_in(&gw, "erin", "erin-pw").await;
    assert_eq!(s, 403, "{expired}");
    assert!(expired.contains("Your password has expired"));
    // ppolicy lockout after 3 wrong binds: then even the right password is refused as locked.
    for _ in 0..3 {
        assert_eq!(sign_in(&gw, "carol", "wrong").await.0, 401);
    }
    let (s, locked, _) = sign_in(&gw, "carol", "carol-pw").await;
    assert_eq!(s, 403, "{locked}");
    assert!(locked.contains("Your account is locked"));
    gw.stop().await;

    // A group search finds direct groups by member.
    let gw = TestGateway::start(&config(&slapd, &up.url(), &format!("groups = \"search\"\ngroup_base = \"ou=groups,{BASE}\"\ngroup_filter = \"(&(objectClass=groupOfNames)(member={{dn}}))\""))).await;
    let (status, _, b) = sign_in(&gw, "alice", "correct horse").await;
    assert_eq!(status, 302);
    let me: serde_json::Value = b
        .get(gw.url(super::HOST, "/.auth/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["groups"], serde_json::json!(["hr"]));
    gw.stop().await;
}

#[tokio::test]
async fn test_connection_binds_the_search_account_and_finds_the_user() {
    let slapd = tokio::task::spawn_blocking(Slapd::start).await.unwrap();
    let settings = realmgate::config::load_str(&config(
        &slapd,
        "http://127.0.0.1:9",
        "groups = \"memberof\"",
    ))
    .unwrap();
    let conn = settings.connection("corp").unwrap();
    let mut out = Vec::new();
    assert!(realmgate::ldap::check::test_connection(conn, Some("alice@corp.test"), &mut out).await);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("bind OK"), "{text}");
    assert!(
        text.contains("uid=alice,ou=people,dc=corp,dc=test"),
        "{text}"
    );
    assert!(text.contains("groups: hr"), "{text}");
    let mut out = Vec::new();
    assert!(!realmgate::ldap::check::test_connection(conn, Some("nobody"), &mut out).await);
    assert!(String::from_utf8(out)
        .unwrap()
        .contains("PROBLEM: no entry"));
    // A wrong search password is said plainly.
    let bad = config(&slapd, "http://127.0.0.1:9", "").replace(
        "bind_password = \"svc-secret\"",
        "bind_password = \"wrong\"",
    );
    let settings = realmgate::config::load_str(&bad).unwrap();
    let mut out = Vec::new();
    assert!(
        !realmgate::ldap::check::test_connection(
            settings.connection("corp").unwrap(),
            None,
            &mut out
        )
        .await
    );
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("the search account (bind_dn) cannot bind"),
        "{text}"
    );
}

#[tokio::test]
async fn start_tls_on_a_plain_ldap_url_signs_in() {
    let slapd = tokio::task::spawn_blocking(Slapd::start).await.unwrap();
    let up = EchoUpstream::start().await;
    let toml =
        config(&slapd, &up.url(), "start_tls = true").replace(&slapd.url(), &slapd.start_tls_url());
    let gw = TestGateway::start(&toml).await;
    let (status, body, _) = sign_in(&gw, "alice", "correct horse").await;
    assert_eq!(status, 302, "{body}");
    gw.stop().await;
    // The same URL without start_tls is refused by check, naming the key.
    let err = realmgate::config::load_str(
        &config(&slapd, &up.url(), "").replace(&slapd.url(), &slapd.start_tls_url()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("connection[0].url") && err.contains("plain LDAP"),
        "{err}"
    );
}

/// ppolicy's `pwdExpireWarning`: frank's password expires in five days and
/// his policy warns within thirty, so the bind's password policy control
/// carries `timeBeforeExpiration`: a notice after sign-in, with the
/// `password_change_url` link and Continue to the target.
#[tokio::test]
async fn ppolicy_expiry_warning_shows_a_notice_after_sign_in() {
    let slapd = tokio::task::spawn_blocking(Slapd::start).await.unwrap();
    let up = EchoUpstream::start().await;
    let gw = TestGateway::start(&config(
        &slapd,
        &up.url(),
        "password_change_url = \"https://passwords.corp.test/\"",
    ))
    .await;
    let b = super::browser(&gw);
    let html = super::open_form(&gw, &b, "").await;
    let r = super::post(&gw, &b, &super::csrf(&html), "frank", "frank-pw").await;
    assert_eq!(r.status(), 200);
    // The templates escape `/` as `&#x2f;`.
    let page = r.text().await.unwrap().replace("&#x2f;", "/");
    assert!(page.contains("Your password expires in 5 days"), "{page}");
    assert!(
        page.contains("href=\"https://passwords.corp.test/\""),
        "{page}"
    );
    assert!(page.contains(">Continue</a>"), "{page}");
    // Signed in: the app answers.
    let r = b.get(gw.url(super::HOST, "/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // alice's policy has no expiry: no notice.
    let (status, _, _) = sign_in(&gw, "alice", "correct horse").await;
    assert_eq!(status, 302);
    gw.stop().await;
}
