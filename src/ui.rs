//! Server-rendered pages (minijinja, templates embedded at compile time, no
//! external assets): the login page and error pages, branded by `[ui]`.
//!
//! OWNER: ui helper. Contract signatures below must stay.

use crate::config::UiSettings;

/// Sent with every page realmgate renders.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; form-action 'self' https:; frame-ancestors 'none'; base-uri 'none'";

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
    pub buttons: Vec<LoginButton>,
    pub show_email_form: bool,
}

pub struct Pages {
    // ui helper
}

impl Pages {
    pub fn new(settings: &UiSettings) -> Pages {
        let _ = settings;
        todo!("ui")
    }
    /// The home realm discovery page.
    pub fn login(&self, view: &LoginView) -> String {
        let _ = view;
        todo!("ui")
    }
    /// An error page: status, title, message, optional action (label, href).
    pub fn error(
        &self,
        status: u16,
        title: &str,
        message: &str,
        action: Option<(&str, &str)>,
    ) -> String {
        let _ = (status, title, message, action);
        todo!("ui")
    }
}
