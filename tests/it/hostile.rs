//! The hostile-input suite (issue 7, SPEC 6), one module per class of attack.
//! Every case checks the answer *and* what the app behind the gateway got:
//! nothing at all, or nothing it should not have (the echo upstream reflects
//! every header it received).
//!
//! | module | class |
//! | --- | --- |
//! | `redirects` | open redirects through every login/logout target parameter |
//! | `spoofing` | identity headers sent by the client |
//! | `tokens` | ID tokens: OpenID RP certification cases and RFC 8725 attacks |
//! | `flow` | state, PKCE, code replay, mix-up (RFC 9207), login CSRF |
//! | `sessions` | fixation, replay after logout and expiry, tampered cookies |
//! | `paths` | path normalization against public prefixes |
//! | `http` | request smuggling, HTTP/2 abuse, slow clients, limits |
//! | `host` | Host and X-Forwarded-* from untrusted peers |
//! | `proxy_trust` | PROXY headers from untrusted peers; routing, address, scheme and host headers by trust |
//! | `logs` | a whole sign-in at debug level writes no secret |
//! | `admin` | the admin API from web pages: cross-site POSTs, DNS rebinding, bearer token |
//! | `downgrade` | absolute `http://` login targets on sites reached over HTTPS |
//! | `logout` | sign-out started by another site (links, forms, sibling subdomains) |
//!
//! Cases already pinned elsewhere are not repeated here: `login_flow.rs`
//! (the basic hostile-token modes end to end, state/replay, cookies),
//! `id_token.rs` (token modes at the provider client), `forward_auth.rs`
//! (forwarded URIs), `proxying.rs` (hop-by-hop, forwarding headers), the
//! unit tests of `redirect` and `pathnorm` (proptest).

mod admin;
mod downgrade;
mod flow;
mod host;
mod http;
mod logout;
mod logs;
mod paths;
mod proxy_trust;
mod redirects;
mod sessions;
mod spoofing;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

use realmgate::demo::idp::Idp;
use reqwest::header::{HeaderMap, ACCEPT, LOCATION, SET_COOKIE};
use reqwest::StatusCode;

use crate::util::{echo_route, entra, Table};

/// The route with public paths, the `forwarded` profile and a `headers_extra`.
pub const HOST: &str = "app.test";
/// A route with the `easyauth` profile that passes tokens.
pub const EASY_HOST: &str = "easy.test";
/// A route only fabrikam may sign in to.
pub const OTHER_HOST: &str = "other.test";
/// Accept header of browser navigation.
pub const HTML: &str = "text/html,application/xhtml+xml";
pub const ALICE: &str = "alice@contoso.example";
pub const BOB: &str = "bob@contoso.example";

/// The mock Entra (two tenants), an echo upstream and a gateway in front
/// (this suite's world, see `util::world`).
pub enum HostileSuite {}
pub type World = crate::util::World<HostileSuite>;

fn connection(name: &str, tenant: &str) -> Table {
    entra(name, tenant).home_realm(tenant)
}

impl World {
    pub async fn start() -> World {
        World::start_with("", "").await
    }

    /// `server_extra` goes into `[server]`, `session_extra` into `[session]`.
    pub async fn start_with(server_extra: &str, session_extra: &str) -> World {
        World::start_full(server_extra, session_extra, |_| {}).await
    }

    /// As [`World::start_with`]; `setup` configures the IdP before the
    /// gateway starts (and fetches discovery).
    pub async fn start_full(
        server_extra: &str,
        session_extra: &str,
        setup: impl FnOnce(&Idp) + 'static,
    ) -> World {
        World::builder()
            .setup_idp(setup)
            .server(server_extra)
            .session(session_extra)
            .connection(connection("contoso", "contoso.example"))
            .connection(connection("fabrikam", "fabrikam.example"))
            .route(
                echo_route("app", HOST)
                    .public(&["/static/", "/favicon.ico"])
                    .with(r#"headers_extra = { "X-Employee-Id" = "user_id" }"#),
            )
            .route(echo_route("easy", EASY_HOST).with(
                r#"headers = "easyauth"
pass_id_token = true
pass_access_token = true
public = ["/pub/"]"#,
            ))
            .route(echo_route("other", OTHER_HOST).with(r#"connections = ["fabrikam"]"#))
            .start()
            .await
    }

    /// `http://app.test:PORT{path}`
    pub fn url(&self, path: &str) -> String {
        self.gateway.url(HOST, path)
    }

    /// A browser: keeps cookies, follows no redirects, reaches every route host.
    pub fn browser(&self) -> Browser {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .timeout(Duration::from_secs(30))
            .no_proxy();
        for host in [HOST, EASY_HOST, OTHER_HOST, "unknown.test"] {
            b = b.resolve(host, self.gateway.addr);
        }
        Browser {
            client: b.build().unwrap(),
            jar,
        }
    }

    /// A client without cookies (an attacker, or a replay with a given Cookie header).
    pub fn bare(&self) -> reqwest::Client {
        self.gateway.client()
    }

    /// Signs `email` in from a fresh browser via `/.auth/login/contoso`; returns the browser.
    pub async fn signed_in(&self, email: &str) -> Browser {
        let browser = self.browser();
        let authorize = browser.authorize_url(self, "contoso").await;
        let back = self
            .idp
            .complete_login(&authorize, email)
            .expect("IdP issues a code");
        let resp = browser.get(&back.url).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "callback signs in");
        assert!(
            session_cookie(resp.headers()).is_some(),
            "a session cookie is set"
        );
        browser
    }
}

pub struct Browser {
    pub client: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
}

impl Browser {
    /// GET as browser navigation.
    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.client
            .get(url)
            .header(ACCEPT, HTML)
            .send()
            .await
            .expect("request")
    }

    /// Starts a login at `connection` (sets this browser's state cookie);
    /// returns the IdP's authorize URL.
    pub async fn authorize_url(&self, w: &World, connection: &str) -> String {
        let resp = self
            .get(&w.url(&format!("/.auth/login/{connection}")))
            .await;
        assert_eq!(resp.status(), StatusCode::FOUND, "login starts");
        let to = location(&resp);
        assert!(to.starts_with(&w.idp.base_url()), "to the IdP: {to}");
        to
    }

    /// The Cookie header this browser sends to `url`.
    pub fn cookie_header(&self, url: &str) -> String {
        use reqwest::cookie::CookieStore;
        self.jar
            .cookies(&url.parse().unwrap())
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    /// The value of this browser's `realmgate` session cookie.
    pub fn session(&self, w: &World) -> Option<String> {
        self.cookie_header(&w.url("/"))
            .split("; ")
            .find_map(|c| c.strip_prefix("realmgate="))
            .map(str::to_string)
    }
}

pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// `base` with `pairs` appended to its query, form-encoded.
pub fn with_query(base: impl AsRef<str>, pairs: &[(&str, &str)]) -> String {
    let mut u = url::Url::parse(base.as_ref()).expect("absolute URL");
    u.query_pairs_mut().extend_pairs(pairs);
    u.to_string()
}

pub fn param(url: &str, name: &str) -> Option<String> {
    let parsed = url::Url::parse(url)
        .or_else(|_| url::Url::parse("http://relative.invalid/")?.join(url))
        .ok()?;
    parsed
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The value of a (non-deleting) `realmgate=` Set-Cookie, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|c| !c.contains("Max-Age=0"))
        .find_map(|c| c.strip_prefix("realmgate="))
        .and_then(|c| c.split(';').next())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}
