//! Active Directory tier: Samba's AD DC (Debian `samba-ad-dc`), provisioned
//! by the test into its own directory and started in a network namespace
//! of its own (`ip netns add`): Samba's LDAP ports are fixed (389, 636), so
//! the namespace gives it a loopback where they are free. realmgate reaches
//! it on 127.0.0.1 through a relay process that runs in the namespace and
//! accepts on a listener the test bound in the host's namespace (a socket
//! keeps the namespace it was made in), so every byte stays on loopback.
//!
//! What this proves against a real AD (not the fake): the UPN and
//! `DOMAIN\user` direct binds,
//! transitive groups with LDAP_MATCHING_RULE_IN_CHAIN, the binary
//! objectGUID as the user id, AD's bind sub-codes (775 locked, 533
//! disabled, 532 password expired, 773 must change, 701 account expired,
//! 530 outside logon hours),
//! `msDS-UserPasswordExpiryTimeComputed` (the expiry notice), and one
//! failure budget per account whatever its spelling.
//!
//! Users are made offline, before the DC starts, by one Python script on
//! Samba's own bindings, run under libfaketime three days in the past: so
//! passwords are three days old, which, with fine-grained password
//! policies (PSOs) of 2 and 8 days, gives an expired password and one that
//! expires in five days. Needs root (network namespaces, Samba) and the
//! packages `samba-ad-dc`, `faketime`, `ldap-utils` (scripts/test.sh
//! installs them); without them the test fails saying so.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{route, EchoUpstream, TestGateway, SECRET};

const SAMBA: &str = "/usr/sbin/samba";
const REALM: &str = "CORP.EXAMPLE";
const BASE: &str = "DC=corp,DC=example";
const ADMIN_PW: &str = "Adm1n-Pass!word";
/// Every test user's password (meets AD's default complexity).
const PW: &str = "Passw0rd-Long!";

/// A running Samba AD DC in its own network namespace; the DC and the
/// relay killed by PID, the namespace deleted, the directory removed on
/// drop.
pub struct SambaDc {
    samba: Child,
    relay: Child,
    netns: String,
    dir: tempfile::TempDir,
    /// The relay's port on 127.0.0.1 (to the DC's ldaps port).
    pub port: u16,
}

impl Drop for SambaDc {
    fn drop(&mut self) {
        for c in [&mut self.samba, &mut self.relay] {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deletes namespaces of earlier runs whose process is gone (a run that
/// was killed before its drop).
fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(pid) = name
            .strip_prefix("rg-ad-")
            .and_then(|r| r.split('-').next())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

impl SambaDc {
    pub fn url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.port)
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// Runs `tool` (ldap-utils) in the DC's namespace.
    fn in_netns(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .args(args)
            .env("LDAPTLS_CACERT", self.ca_file())
            .output()
            .unwrap()
    }

    pub fn start() -> SambaDc {
        assert!(
            Path::new(SAMBA).exists() && Path::new("/usr/bin/faketime").exists(),
            "the AD tier needs Samba's AD DC and libfaketime: apt-get install -y samba-ad-dc faketime ldap-utils (scripts/test.sh does this)"
        );
        let uid = Command::new("id").arg("-u").output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "the AD tier needs root (a network namespace, Samba's AD DC): run the tests as root"
        );
        remove_stale_namespaces();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap();
        std::fs::write(d.join("cert.pem"), cert.cert.pem()).unwrap();
        // Samba refuses a key file others can read.
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(d.join("key.pem"))
                .unwrap();
            f.write_all(cert.key_pair.serialize_pem().as_bytes())
                .unwrap();
        }
        let dc = d.join("dc");
        let opt = |k: &str, v: &str| format!("--option={k}={v}");
        run(
            Command::new("samba-tool")
                .args(["domain", "provision"])
                .arg(format!("--targetdir={}", dc.display()))
                .args([
                    &format!("--realm={REALM}"),
                    "--domain=CORP",
                    "--server-role=dc",
                    "--dns-backend=NONE",
                    "--host-name=dc1",
                    &format!("--adminpass={ADMIN_PW}"),
                    &opt("interfaces", "lo"),
                    &opt("bind interfaces only", "yes"),
                    // LDAP alone: no SMB, Kerberos, DNS, NTP signing, ...
                    &opt("server services", "ldap"),
                    &opt("tls enabled", "yes"),
                    &opt("tls certfile", &d.join("cert.pem").display().to_string()),
                    &opt("tls keyfile", &d.join("key.pem").display().to_string()),
                    &opt("tls cafile", ""),
                    &opt("log file", &d.join("samba.log").display().to_string()),
                    &opt("panic action", ""),
                ]),
            "samba-tool domain provision",
        );
        let conf = dc.join("etc/smb.conf");
        std::fs::write(d.join("users.py"), USERS_PY).unwrap();
        // Three days in the past: every password is three days old.
        run(
            Command::new("faketime")
                .args(["-f", "-3d", "/usr/bin/python3"])
                .arg(d.join("users.py"))
                .arg(&conf)
                .arg(dc.join("private/sam.ldb"))
                .arg(PW),
            "making the AD users (users.py)",
        );

        let netns = format!(
            "rg-ad-{}-{}",
            std::process::id(),
            rand::random::<u32>() % 1_000_000
        );
        run(
            Command::new("ip").args(["netns", "add", &netns]),
            "ip netns add",
        );
        // From here the namespace is deleted on drop, even if start fails.
        let mut guard = NetnsGuard(Some(netns.clone()));
        run(
            Command::new("ip").args(["netns", "exec", &netns, "ip", "link", "set", "lo", "up"]),
            "ip link set lo up (in the namespace)",
        );
        let samba = Command::new("ip")
            .args(["netns", "exec", &netns, SAMBA, "-i", "-M", "single", "-s"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("samba");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let relay = Command::new("ip")
            .args(["netns", "exec", &netns, "/usr/bin/python3", "-c", RELAY_PY])
            .stdin(Stdio::from(OwnedFd::from(listener)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the relay (python3)");
        guard.0 = None;
        let dc = SambaDc {
            samba,
            relay,
            netns,
            dir,
            port,
        };
        dc.wait_ready();
        dc
    }

    /// Until the DC answers an anonymous rootDSE read over ldaps in its
    /// namespace (at most 90 s: provisioned databases load in seconds).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let out = self.in_netns(&[
                "ldapsearch",
                "-x",
                "-H",
                "ldaps://127.0.0.1",
                "-b",
                "",
                "-s",
                "base",
                "defaultNamingContext",
            ]);
            if out.status.success() {
                return;
            }
            let log =
                std::fs::read_to_string(self.dir.path().join("samba.log")).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "Samba's AD DC did not answer on ldaps within 90 s: {}\n{log}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// Deletes a namespace unless disarmed (`start` failing half-way).
struct NetnsGuard(Option<String>);

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Some(n) = self.0.take() {
            let _ = Command::new("ip").args(["netns", "del", &n]).status();
        }
    }
}

/// The relay: accepts on the listener it got as stdin (bound by the test
/// in the host's namespace) and pipes each connection to the DC's ldaps
/// port on the namespace's loopback. Ends when stdin's listener fails.
const RELAY_PY: &str = r#"
import socket, threading
lsn = socket.socket(fileno=0)
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
def serve(c):
    try:
        u = socket.create_connection(("127.0.0.1", 636), timeout=10)
        u.settimeout(None)
    except OSError:
        c.close()
        return
    for s in (c, u):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=pipe, args=(c, u), daemon=True).start()
    threading.Thread(target=pipe, args=(u, c), daemon=True).start()
while True:
    c, _ = lsn.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// The directory's content, written offline with Samba's Python bindings
/// (argv: smb.conf, sam.ldb, the users' password).
const USERS_PY: &str = r#"
import sys
from samba.samdb import SamDB
from samba.auth import system_session
from samba.param import LoadParm
lp = LoadParm()
lp.load(sys.argv[1])
db = SamDB(url=sys.argv[2], session_info=system_session(), lp=lp)
pw = sys.argv[3]
base = db.domain_dn()
def user(name, **kw):
    db.newuser(name, pw, givenname=name.capitalize(), surname="Example",
               mailaddress=name + "@corp.example", **kw)
for n in ["alice", "svc", "locked", "disabled", "expired", "expiring", "acctexp", "bsmith", "nohours"]:
    user(n)
user("mustchange", force_password_change_at_next_login_req=True)
# bsmith's UPN is not his sAMAccountName: two spellings of one account.
db.modify_ldif("""dn: CN=bsmith,CN=Users,%s
changetype: modify
replace: userPrincipalName
userPrincipalName: bob@corp.example
""" % base)
db.newgroup("hr")
db.newgroup("staff")
db.add_remove_group_members("hr", ["alice"], add_members_operation=True)
db.add_remove_group_members("staff", ["hr"], add_members_operation=True)
db.disable_account("(sAMAccountName=disabled)")
db.setexpiry("(sAMAccountName=acctexp)", 0)
import ldb
m = ldb.Message()
m.dn = ldb.Dn(db, "CN=nohours,CN=Users,%s" % base)
# 168 bits, one per hour of the week: none allowed.
m["logonHours"] = ldb.MessageElement(bytes(21), ldb.FLAG_MOD_REPLACE, "logonHours")
db.modify(m)
DAY = 864000000000
def pso(name, applies, max_age_days, lockout):
    db.add_ldif("""dn: CN=%s,CN=Password Settings Container,CN=System,%s
objectClass: msDS-PasswordSettings
msDS-PasswordSettingsPrecedence: 1
msDS-PasswordReversibleEncryptionEnabled: FALSE
msDS-PasswordHistoryLength: 0
msDS-PasswordComplexityEnabled: FALSE
msDS-MinimumPasswordLength: 1
msDS-MinimumPasswordAge: 0
msDS-MaximumPasswordAge: %d
msDS-LockoutThreshold: %d
msDS-LockoutObservationWindow: -18000000000
msDS-LockoutDuration: -18000000000
msDS-PSOAppliesTo: CN=%s,CN=Users,%s
""" % (name, base, -max_age_days * DAY, lockout, applies, base))
pso("expired-pso", "expired", 2, 0)
pso("expiring-pso", "expiring", 8, 0)
pso("locked-pso", "locked", 42, 2)
"#;

fn config(dc: &SambaDc, upstream: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
trusted_proxies = ["127.0.0.1"]

[admin]
listen = "127.0.0.1:0"

[session]
secret = "{SECRET}"

[[connection]]
name = "corp"
type = "ldap"
url = "{url}"
ca_file = "{ca}"
user_base = "{BASE}"
attributes = {{ user_id = "objectGUID", email = "mail", name = "displayName", username = "sAMAccountName" }}
groups = "memberof_chain"
home_realm_domains = ["corp.example"]
trusted_email = true
password_change_url = "https://passwords.corp.example/change"
timeout = "10s"
{extra}

{route}
"#,
        url = dc.url(),
        ca = dc.ca_file().display(),
        route = route("app", super::HOST, "/", upstream, ""),
    )
}

/// One sign-in from a browser of its own, seen as coming from `from` (the
/// gateway trusts 127.0.0.1 as a proxy): the address's budget then never
/// stands in for the login's.
async fn sign_in(
    gw: &TestGateway,
    from: &str,
    user: &str,
    pw: &str,
) -> (u16, String, reqwest::Client) {
    let b = super::browser(gw);
    let html = super::open_form(gw, &b, "").await;
    let r = b
        .post(gw.url(super::HOST, "/.auth/login/corp"))
        .header("x-forwarded-for", from)
        .form(&[
            ("csrf", super::csrf(&html).as_str()),
            ("username", user),
            ("password", pw),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    // The templates escape `/` as `&#x2f;`.
    let body = r.text().await.unwrap_or_default().replace("&#x2f;", "/");
    (status, body, b)
}

async fn me(gw: &TestGateway, b: &reqwest::Client) -> serde_json::Value {
    b.get(gw.url(super::HOST, "/.auth/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The objectGUID of `sam` as Samba's own tools print it (ldapsearch in
/// the DC's namespace, as the administrator).
fn guid_of(dc: &SambaDc, sam: &str) -> String {
    let out = dc.in_netns(&[
        "ldapsearch",
        "-LLL",
        "-o",
        "ldif-wrap=no",
        "-x",
        "-H",
        "ldaps://127.0.0.1",
        "-D",
        &format!("Administrator@{}", REALM.to_lowercase()),
        "-w",
        ADMIN_PW,
        "-b",
        BASE,
        &format!("(sAMAccountName={sam})"),
        "objectGUID",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let b64 = text
        .lines()
        .find_map(|l| l.strip_prefix("objectGUID:: "))
        .unwrap_or_else(|| panic!("no objectGUID for {sam}: {text}"));
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap();
    realmgate::ldap::directory::guid_string(&raw).unwrap()
}

#[tokio::test]
async fn samba_ad_dc_upn_bind_in_chain_groups_sub_codes_expiry_and_spellings() {
    let dc = tokio::task::spawn_blocking(SambaDc::start).await.unwrap();
    let up = EchoUpstream::start().await;

    // --- Direct bind with the UPN, no search account. ---
    let gw = TestGateway::start(&config(
        &dc,
        &up.url(),
        "bind_as = \"{login}\"\nmax_failed_logins = 50",
    ))
    .await;
    let (status, body, b) = sign_in(&gw, "10.0.0.1", "alice@corp.example", PW).await;
    assert_eq!(status, 302, "{body}");
    let m = me(&gw, &b).await;
    // The binary objectGUID, in its lowercase hyphenated form (as Samba's
    // own tools decode it), is the user id.
    assert_eq!(
        m["user_id"],
        format!("corp:{}", guid_of(&dc, "alice")),
        "{m}"
    );
    // Transitive groups: alice is in hr, hr is in staff.
    let groups: Vec<&str> = m["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g.as_str())
        .collect();
    assert!(
        groups.contains(&"hr") && groups.contains(&"staff"),
        "{groups:?}"
    );
    assert_eq!(m["email"], "alice@corp.example");
    // The down-level name binds too, and reads this domain's alice (by
    // sAMAccountName, after checking CORP is this domain's NetBIOS name).
    for spelling in ["CORP\\alice", "corp\\ALICE"] {
        let (status, body, b) = sign_in(&gw, "10.0.0.4", spelling, PW).await;
        assert_eq!(status, 302, "{spelling}: {body}");
        assert_eq!(me(&gw, &b).await["user_id"], m["user_id"], "{spelling}");
    }

    // Wrong password and unknown user: one message.
    let (s1, wrong, _) = sign_in(&gw, "10.0.0.2", "alice@corp.example", "nope").await;
    let (s2, unknown, _) = sign_in(&gw, "10.0.0.3", "nobody@corp.example", "nope").await;
    assert_eq!((s1, s2), (401, 401));
    assert!(wrong.contains("The user name or password is incorrect"));
    assert!(unknown.contains("The user name or password is incorrect"));

    // AD's sub-codes, as Samba answers them.
    for (user, code, text) in [
        ("disabled", 403, "Your account is disabled"),
        ("acctexp", 403, "Your account has expired"),
        ("mustchange", 403, "You must change your password"),
        ("expired", 403, "Your password has expired"),
        ("nohours", 403, "at this time of day"),
    ] {
        let (s, body, _) = sign_in(&gw, "10.0.1.1", &format!("{user}@corp.example"), PW).await;
        assert_eq!(s, code, "{user}: {body}");
        assert!(body.contains(text), "{user}: {body}");
        if user == "expired" || user == "mustchange" {
            assert!(
                body.contains("https://passwords.corp.example/change"),
                "{user}: the change link"
            );
        }
    }
    // The locked user's PSO locks after 2 wrong passwords (AD's own lockout).
    for i in 0..2 {
        let (s, _, _) = sign_in(&gw, &format!("10.0.2.{i}"), "locked@corp.example", "wrong").await;
        assert_eq!(s, 401);
    }
    let (s, body, _) = sign_in(&gw, "10.0.2.9", "locked@corp.example", PW).await;
    assert_eq!(s, 403, "{body}");
    assert!(body.contains("Your account is locked"), "{body}");

    // The password expires in five days: signed in, then a notice with the
    // change link and a Continue link to the target (no JavaScript).
    let (s, body, b) = sign_in(&gw, "10.0.3.1", "expiring@corp.example", PW).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("Your password expires in 5 days"), "{body}");
    assert!(body.contains("href=\"https://passwords.corp.example/change\""));
    assert!(body.contains(">Continue</a>"), "{body}");
    assert!(me(&gw, &b).await["user_id"]
        .as_str()
        .unwrap()
        .starts_with("corp:"));
    // alice's password expires in 39 days: no notice.
    let (s, _, _) = sign_in(&gw, "10.0.3.2", "alice@corp.example", PW).await;
    assert_eq!(s, 302);

    // Spellings AD accepts for one account share one failure budget.
    gw.stop().await;
    let gw = TestGateway::start(&config(
        &dc,
        &up.url(),
        "bind_as = \"{login}\"\nuser_filter = \"(|(userPrincipalName={login})(sAMAccountName={login}))\"\nmax_failed_logins = 3",
    ))
    .await;
    for (i, spelling) in ["CORP\\bsmith", "corp\\BSmith", "bsmith@corp.example"]
        .iter()
        .enumerate()
    {
        let (s, body, _) = sign_in(&gw, &format!("10.0.4.{i}"), spelling, "wrong").await;
        assert_eq!(s, 401, "{spelling}: {body}");
    }
    let (s, body, _) = sign_in(&gw, "10.0.4.9", "CORP\\bsmith", PW).await;
    assert_eq!(s, 429, "a fourth spelling is the same login: {body}");
    gw.stop().await;

    // --- Search-then-bind with a service account. ---
    let gw = TestGateway::start(&config(
        &dc,
        &up.url(),
        &format!("bind_dn = \"CN=svc,CN=Users,{BASE}\"\nbind_password = \"{PW}\"\nuser_filter = \"(&(objectClass=user)(|(userPrincipalName={{login}})(sAMAccountName={{login}})))\"\nmax_failed_logins = 3"),
    ))
    .await;
    let (s, body, b) = sign_in(&gw, "10.0.5.1", "alice", PW).await;
    assert_eq!(s, 302, "{body}");
    assert_eq!(
        me(&gw, &b).await["user_id"],
        format!("corp:{}", guid_of(&dc, "alice"))
    );
    // bsmith's UPN (bob@...) shares nothing with his sAMAccountName, but
    // both find one entry: one budget.
    for (i, spelling) in ["bob@corp.example", "bsmith", "BOB@CORP.EXAMPLE"]
        .iter()
        .enumerate()
    {
        let (s, body, _) = sign_in(&gw, &format!("10.0.6.{i}"), spelling, "wrong").await;
        assert_eq!(s, 401, "{spelling}: {body}");
    }
    let (s, body, _) = sign_in(&gw, "10.0.6.9", "bsmith", PW).await;
    assert_eq!(s, 429, "{body}");
    // The expiry notice with search-then-bind too (the search account reads
    // msDS-UserPasswordExpiryTimeComputed).
    let (s, body, _) = sign_in(&gw, "10.0.7.1", "expiring", PW).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("Your password expires in 5 days"), "{body}");
    gw.stop().await;
}
