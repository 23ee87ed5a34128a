//! Server-rendered pages (minijinja, templates embedded at compile time, no
//! external assets): the login page and error pages, branded by `[ui]`.
//!
//! Every value reaches the HTML through minijinja with HTML auto-escaping on,
//! so user input (the email typed on the login page, the post-login target)
//! can never become markup. A page is an inner template (`login.html`,
//! `error.html`, `logout.html`) rendered first and then placed, as already-escaped markup,
//! into `frame.html`, which carries the branding and the only stylesheet
//! (inline, because [`CONTENT_SECURITY_POLICY`] allows nothing else). There is
//! no JavaScript on any page.
//!
//! URLs that end up in `href`/`src` attributes are checked here as well as in
//! config validation (defence in depth): escaping stops markup injection, but
//! not a `javascript:` URL.

use std::fmt;

use minijinja::{context, AutoEscape, Environment, Value};
use serde::Serialize;

use crate::config::UiSettings;

/// Sent with every page realmgate renders.
///
/// `form-action` also governs the redirects that follow a form submission:
/// `POST /.auth/login` answers with a redirect to the provider's authorization
/// endpoint, which may be plain `http:` (the demo IdP, test providers on
/// loopback, an internal Keycloak). Browsers abort such a redirect when
/// `http:` is missing here, so it is allowed; `javascript:` and `data:`
/// targets stay blocked, and no page has script or user-controlled markup.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; form-action 'self' https: http:; frame-ancestors 'none'; base-uri 'none'";

/// The accent colour when `[ui] accent_color` is missing or unusable.
const DEFAULT_ACCENT: [u8; 3] = [0x0f, 0x6c, 0xbd];

const FRAME: &str = "frame.html";
const LOGIN: &str = "login.html";
const ERROR: &str = "error.html";
const LOGOUT: &str = "logout.html";
const PASSWORD: &str = "password.html";
const NOTICE: &str = "notice.html";
const SIGNED_IN: &str = "signed_in.html";

const TEMPLATES: [(&str, &str); 7] = [
    (FRAME, include_str!("ui/templates/frame.html")),
    (LOGIN, include_str!("ui/templates/login.html")),
    (ERROR, include_str!("ui/templates/error.html")),
    (LOGOUT, include_str!("ui/templates/logout.html")),
    (PASSWORD, include_str!("ui/templates/password.html")),
    (NOTICE, include_str!("ui/templates/notice.html")),
    (SIGNED_IN, include_str!("ui/templates/signed_in.html")),
];

/// What the password form of an LDAP connection shows (SPEC 9).
#[derive(Debug, Clone, Default)]
pub struct PasswordView {
    /// The connection's display name.
    pub connection: String,
    /// `/.auth/login/{connection}`.
    pub action: String,
    /// The CSRF token bound to this browser; None: no form (sign-in refused
    /// for now), only the message.
    pub csrf: Option<String>,
    /// Pre-filled: the email typed on the sign-in page, or the user name
    /// typed last. Never the password.
    pub username: String,
    pub message: Option<String>,
    /// `password_change_url`, shown with an expired or must-change password.
    pub change_url: Option<String>,
    /// The sign-in page, to choose another account.
    pub back: String,
}

/// A button on the login page that starts sign-in at one connection.
#[derive(Debug, Clone)]
pub struct LoginButton {
    pub label: String,
    pub href: String,
}

/// What the login page shows.
#[derive(Debug, Clone, Default)]
pub struct LoginView {
    /// The email to prefill (after an unknown domain).
    pub email: String,
    /// A message above the form (e.g. unknown domain).
    pub message: Option<String>,
    /// The validated post-login target, carried in a hidden field.
    pub target: String,
    /// Parameters passed on towards the provider (`forward_params`), as
    /// (name, value): hidden fields of the email form.
    pub forward: Vec<(String, String)>,
    pub buttons: Vec<LoginButton>,
    pub show_email_form: bool,
}

/// The page renderer: built once per config load, shared by every request.
pub struct Pages {
    env: Environment<'static>,
    brand: Brand,
}

/// Branding values as the templates see them; colours are derived here from
/// the parsed accent so they are always well-formed `#rrggbb`.
#[derive(Debug, Clone, Serialize)]
struct Brand {
    title: String,
    logo_url: Option<String>,
    /// False when the title would only repeat the page heading ("Sign in").
    show_title: bool,
    accent: String,
    accent_hover: String,
    /// Text on the accent: white or black, whichever meets WCAG AA.
    on_accent: String,
    /// The accent darkened until it reads on white (links, focus ring).
    accent_text: String,
}

#[derive(Serialize)]
struct Link<'a> {
    label: &'a str,
    href: &'a str,
}

/// A hidden form field.
#[derive(Serialize)]
struct Field<'a> {
    name: &'a str,
    value: &'a str,
}

// === impl Pages ===

impl Pages {
    pub fn new(settings: &UiSettings) -> Pages {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        for (name, source) in TEMPLATES {
            if let Err(error) = env.add_template(name, source) {
                // Only a broken embedded template gets here (the unit tests
                // render every one); pages then fall back to plain markup.
                tracing::error!(template = name, %error, "embedded template does not compile");
            }
        }
        Pages {
            env,
            brand: Brand::new(settings),
        }
    }

    /// The home realm discovery page.
    pub fn login(&self, view: &LoginView) -> String {
        let buttons: Vec<Link<'_>> = view
            .buttons
            .iter()
            .filter(|b| {
                let ok = safe_href(&b.href);
                if !ok {
                    tracing::warn!("login button with an unsafe link left out");
                }
                ok
            })
            .map(|b| Link {
                label: &b.label,
                href: &b.href,
            })
            .collect();
        let forward: Vec<Field<'_>> = view
            .forward
            .iter()
            .map(|(name, value)| Field { name, value })
            .collect();
        let inner = context! {
            email => &view.email,
            message => view.message.as_deref().filter(|m| !m.is_empty()),
            target => &view.target,
            forward => forward,
            buttons => buttons,
            show_email_form => view.show_email_form,
        };
        self.page(LOGIN, "Sign in", inner).unwrap_or_else(|| {
            fallback_page(
                "Sign in",
                "The sign-in page could not be shown. Try again later.",
            )
        })
    }

    /// The password form of an LDAP connection.
    pub fn password(&self, view: &PasswordView) -> String {
        let back = if safe_href(&view.back) {
            view.back.as_str()
        } else {
            "/.auth/login"
        };
        let action = if view.action.starts_with("/.auth/login/") && safe_href(&view.action) {
            view.action.as_str()
        } else {
            "/.auth/login"
        };
        let inner = context! {
            connection => &view.connection,
            action,
            csrf => view.csrf.as_deref(),
            username => &view.username,
            message => view.message.as_deref().filter(|m| !m.is_empty()),
            change_url => view.change_url.as_deref().filter(|u| safe_href(u)),
            back,
        };
        self.page(PASSWORD, "Sign in", inner).unwrap_or_else(|| {
            fallback_page(
                "Sign in",
                "The sign-in form could not be shown. Try again later.",
            )
        })
    }

    /// An error page: status, title, message, optional action (label, href).
    pub fn error(
        &self,
        status: u16,
        title: &str,
        message: &str,
        action: Option<(&str, &str)>,
    ) -> String {
        let action = action
            .filter(|(_, href)| safe_href(href))
            .map(|(label, href)| Link { label, href });
        let inner = context! { status, title, message, action };
        self.page(ERROR, title, inner)
            .unwrap_or_else(|| fallback_page(title, message))
    }

    /// A notice after sign-in (the session is already made), before the
    /// user goes on to `continue_href`: a plain link that works without
    /// JavaScript, and the notice's own link (a password change page) if
    /// any. Links that are not a path or an http(s) URL are left out; an
    /// unsafe `continue_href` becomes `/`.
    pub fn notice(
        &self,
        title: &str,
        message: &str,
        link: Option<(&str, &str)>,
        continue_href: &str,
    ) -> String {
        let link = link
            .filter(|(_, href)| safe_href(href))
            .map(|(label, href)| Link { label, href });
        let continue_href = if safe_href(continue_href) {
            continue_href
        } else {
            "/"
        };
        let inner = context! { title, message, link, continue_href };
        self.page(NOTICE, title, inner)
            .unwrap_or_else(|| fallback_page(title, message))
    }

    /// `/.auth/login` for a browser that is signed in already: who it is
    /// (`via`: the connection's display name), a button on to `target`
    /// and one to sign in with another account (`switch`). Links that are
    /// not paths on this host become `/` and `/.auth/login?switch=1`.
    pub fn signed_in(&self, who: &str, via: &str, target: &str, switch: &str) -> String {
        let target = if safe_href(target) { target } else { "/" };
        let switch = if switch.starts_with("/.auth/login?") && safe_href(switch) {
            switch
        } else {
            "/.auth/login?switch=1"
        };
        let via = (!via.is_empty()).then_some(via);
        self.page(
            SIGNED_IN,
            "Signed in",
            context! { who, via, target, switch },
        )
        .unwrap_or_else(|| {
            fallback_page(
                "Signed in",
                "You are signed in. Continue to the application.",
            )
        })
    }

    /// The page a sign-out request from another site gets instead of a
    /// sign-out: a button that POSTs to `action` (`/.auth/logout`, with the
    /// validated target in its query) and a way back. An action that is not
    /// a path on this host is replaced by `/.auth/logout`.
    pub fn confirm_logout(&self, action: &str) -> String {
        let action = if action.starts_with("/.auth/logout") && safe_href(action) {
            action
        } else {
            "/.auth/logout"
        };
        self.page(LOGOUT, "Sign out?", context! { action })
            .unwrap_or_else(|| {
                fallback_page(
                    "Sign out?",
                    "A page on another site asked to sign you out. The confirmation could not be shown; go to /.auth/logout on this site to sign out.",
                )
            })
    }

    /// Renders `template`, then wraps it in the frame. `None` only if an
    /// embedded template is broken.
    fn page(&self, template: &str, page_title: &str, inner: Value) -> Option<String> {
        let render = |name: &str, ctx: Value| {
            self.env
                .get_template(name)
                .and_then(|t| t.render(ctx))
                .map_err(|error| tracing::error!(template = name, %error, "page rendering failed"))
                .ok()
        };
        let content = render(template, inner)?;
        render(
            FRAME,
            context! {
                brand => &self.brand,
                page_title,
                // Already escaped by the auto-escaping render above.
                content => Value::from_safe_string(content),
            },
        )
    }
}

impl fmt::Debug for Pages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pages")
            .field("brand", &self.brand)
            .finish_non_exhaustive()
    }
}

// === impl Brand ===

impl Brand {
    fn new(settings: &UiSettings) -> Brand {
        let accent = parse_hex_colour(&settings.accent_color).unwrap_or_else(|| {
            tracing::warn!("ui.accent_color is not a hex colour; using the default");
            DEFAULT_ACCENT
        });
        let white = [255, 255, 255];
        let black = [0, 0, 0];
        // Pick the text colour with the higher contrast: for any background one
        // of the two reaches at least 4.58:1, above the AA minimum of 4.5:1.
        let light_text = contrast(accent, white) >= contrast(accent, black);
        // Hover moves away from the text colour, so contrast only improves.
        let accent_hover = if light_text {
            mix(accent, black, 0.15)
        } else {
            mix(accent, white, 0.2)
        };
        let mut accent_text = accent;
        let mut step = 0.0;
        while contrast(accent_text, white) < 4.5 && step < 1.0 {
            step += 0.05;
            accent_text = mix(accent, black, step);
        }
        let logo_url = settings.logo_url.clone().filter(|u| {
            let ok = safe_logo(u);
            if !ok {
                tracing::warn!(
                    "ui.logo_url is not an https, data:image or absolute-path URL; not shown"
                );
            }
            ok
        });
        let title = if settings.title.trim().is_empty() {
            "Sign in".to_owned()
        } else {
            settings.title.clone()
        };
        Brand {
            show_title: !title.trim().eq_ignore_ascii_case("sign in"),
            title,
            logo_url,
            accent: hex(accent),
            accent_hover: hex(accent_hover),
            on_accent: hex(if light_text { white } else { black }),
            accent_text: hex(accent_text),
        }
    }
}

/// A link target the pages may render: a path on this host, or an http(s)
/// URL (a provider's page). Never `javascript:`, `data:` or a
/// scheme-relative `//host` that a browser would resolve elsewhere.
fn safe_href(href: &str) -> bool {
    let lower = href.get(..8).unwrap_or(href).to_ascii_lowercase();
    let path = href.starts_with('/') && !href.starts_with("//") && !href.starts_with("/\\");
    let no_controls = !href.chars().any(|c| c.is_control() || c.is_whitespace());
    no_controls && (path || lower.starts_with("https://") || lower.starts_with("http://"))
}

/// A logo the CSP lets load (`img-src https: data:`, or same-origin https).
fn safe_logo(url: &str) -> bool {
    let lower = url.get(..11).unwrap_or(url).to_ascii_lowercase();
    let path = url.starts_with('/') && !url.starts_with("//") && !url.starts_with("/\\");
    let no_controls = !url.chars().any(char::is_control);
    no_controls && (path || lower.starts_with("https://") || lower.starts_with("data:image/"))
}

/// `#rgb` or `#rrggbb`.
fn parse_hex_colour(s: &str) -> Option<[u8; 3]> {
    let hex = s.strip_prefix('#')?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let digit = |i: usize| u8::from_str_radix(hex.get(i..i + 1)?, 16).ok();
    match hex.len() {
        3 => Some([digit(0)? * 17, digit(1)? * 17, digit(2)? * 17]),
        6 => {
            let byte = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
            Some([byte(0)?, byte(2)?, byte(4)?])
        }
        _ => None,
    }
}

fn hex([r, g, b]: [u8; 3]) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// `a` moved towards `b` by `amount` (0..=1).
fn mix(a: [u8; 3], b: [u8; 3], amount: f64) -> [u8; 3] {
    let amount = amount.clamp(0.0, 1.0);
    let channel =
        |x: u8, y: u8| (f64::from(x) + (f64::from(y) - f64::from(x)) * amount).round() as u8;
    [
        channel(a[0], b[0]),
        channel(a[1], b[1]),
        channel(a[2], b[2]),
    ]
}

/// WCAG 2 relative luminance.
fn luminance(rgb: [u8; 3]) -> f64 {
    let lin = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.040_45 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * lin(rgb[0]) + 0.7152 * lin(rgb[1]) + 0.0722 * lin(rgb[2])
}

/// WCAG 2 contrast ratio (1..=21).
fn contrast(a: [u8; 3], b: [u8; 3]) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

/// The page shown if an embedded template ever failed to render.
fn fallback_page(title: &str, message: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>{t}</title><h1>{t}</h1><p>{m}</p></html>",
        t = escape_html(title),
        m = escape_html(message)
    )
}

/// Escapes `& < > " '` for HTML text and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
