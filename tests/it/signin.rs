//! Signing users in from a test browser against the mock Entra: the pieces
//! every sign-in test repeats (a cookie-keeping browser, starting a login,
//! letting the IdP pick the user, the callback, `/.auth/me`).

use std::sync::Arc;
use std::time::Duration;

use realmgate::demo::idp::{Idp, IdpConfig, IdpUser};
use reqwest::header::{HeaderMap, ACCEPT, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::Value;

use crate::util::TestGateway;

/// What a browser's navigation asks for.
pub const HTML: &str = "text/html,application/xhtml+xml";

/// A browser: keeps cookies, follows no redirects, reaches every route host
/// of the gateway it was made for.
pub struct Browser {
    pub client: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
}

impl Browser {
    pub fn new(gateway: &TestGateway) -> Browser {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .timeout(Duration::from_secs(30))
            .no_proxy();
        for route in &gateway.settings.routes {
            for host in &route.hosts {
                b = b.resolve(host, gateway.addr);
            }
        }
        Browser {
            client: b.build().expect("reqwest client"),
            jar,
        }
    }

    /// A navigation (`Accept: text/html`).
    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.client
            .get(url)
            .header(ACCEPT, HTML)
            .send()
            .await
            .expect("request")
    }

    /// The `Cookie` header this browser sends to `url`.
    pub fn cookie_header(&self, url: &str) -> String {
        use reqwest::cookie::CookieStore;
        self.jar
            .cookies(&url.parse().unwrap())
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    /// Opens `url` (e.g. `/.auth/login/contoso?rd=/page`), which must
    /// redirect to the provider; returns the authorization URL.
    pub async fn login_at(&self, url: &str) -> String {
        let resp = self.get(url).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "{url} starts the login");
        location(&resp)
    }

    /// Posts `email` to the login page at `login_url` (`.../.auth/login`)
    /// with `target` as the page to land on; returns the authorization URL.
    pub async fn post_email(&self, login_url: &str, email: &str, target: &str) -> String {
        let resp = self
            .client
            .post(login_url)
            .header(ACCEPT, HTML)
            .form(&[("email", email), ("post_login_redirect_uri", target)])
            .send()
            .await
            .expect("login page answers");
        assert_eq!(
            resp.status(),
            StatusCode::FOUND,
            "a known domain starts the flow"
        );
        location(&resp)
    }

    /// Lets the IdP sign `user` (an oid, or an email only one user of the
    /// tenant has) in at `authorize` and brings the answer to the callback;
    /// returns the callback's response.
    pub async fn finish_login(&self, idp: &Idp, authorize: &str, user: &str) -> reqwest::Response {
        let back = idp
            .complete_login(authorize, user)
            .expect("IdP issues a code");
        self.get(&back.url).await
    }

    /// `GET /.auth/me` at `url`: the status and the JSON body (`Null` if none).
    pub async fn me(&self, url: &str) -> (StatusCode, Value) {
        let resp = self
            .client
            .get(url)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .expect("/.auth/me answers");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

/// The response's `Location`, or "" without one.
pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Every `Set-Cookie` value.
pub fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// `realmgate=<value>` from the session cookie a response sets.
pub fn session_cookie(resp: &reqwest::Response) -> String {
    set_cookies(resp.headers())
        .iter()
        .find(|c| c.starts_with("realmgate="))
        .and_then(|c| c.split(';').next())
        .expect("session cookie")
        .to_string()
}

/// The demo IdP's user with this email.
pub fn demo_user(email: &str) -> IdpUser {
    IdpConfig::demo_default()
        .users()
        .into_iter()
        .find(|u| u.email == email)
        .unwrap_or_else(|| panic!("no demo user {email}"))
}
