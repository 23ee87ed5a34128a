//! Tier 3 for the pages themselves: realmgate's sign-in and error pages in
//! Debian's chromium, used with the keyboard alone (`tests/node/keyboard.mjs`):
//! the email field has focus on load, Tab reaches every control in reading
//! order, and the focused control always shows a visible outline in the accent
//! colour.

use std::time::Duration;

use realmgate::config::UiSettings;
use realmgate::ui::{LoginButton, LoginView, Pages};

use crate::node::run_script;

/// Writes `html` to a temp file and walks it with `tabs` presses of Tab.
async fn walk(html: &str, tabs: u32) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("page.html");
    std::fs::write(&file, html).expect("write page");
    let args = vec![
        format!("file://{}", file.display()),
        "--tabs".to_owned(),
        tabs.to_string(),
    ];
    let (ok, stdout, stderr) = run_script("keyboard.mjs", &args, Duration::from_secs(60)).await;
    assert!(ok, "keyboard.mjs failed:\n{stdout}{stderr}");
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("keyboard.mjs printed no JSON ({e}): {stdout}"))
}

fn pages(accent: &str) -> Pages {
    Pages::new(&UiSettings {
        title: "Contoso Apps".into(),
        logo_url: None,
        accent_color: accent.into(),
    })
}

/// The focused element's accessible name, and whether its outline is a solid
/// line of at least 2px.
fn stop(focus: &serde_json::Value) -> (String, bool) {
    let name = focus["name"]
        .as_str()
        .unwrap_or("<nothing focused>")
        .to_owned();
    let outline = focus["outline"].as_str().unwrap_or("");
    let mut parts = outline.split(' ');
    let visible = parts.next() == Some("solid")
        && parts
            .next()
            .and_then(|w| w.trim_end_matches("px").parse::<f32>().ok())
            .is_some_and(|w| w >= 2.0);
    (name, visible)
}

#[tokio::test]
async fn login_page_works_with_the_keyboard_alone() {
    let html = pages("#0f6cbd").login(&LoginView {
        show_email_form: true,
        target: "/reports".into(),
        buttons: vec![LoginButton {
            label: "Fabrikam".into(),
            href: "/.auth/login/fabrikam".into(),
        }],
        ..LoginView::default()
    });
    let walked = walk(&html, 2).await;
    assert_eq!(walked["lang"], "en");
    let focus = walked["focus"].as_array().expect("focus list");
    let stops: Vec<(String, bool)> = focus.iter().map(stop).collect();
    assert_eq!(
        stops,
        vec![
            ("Email address".to_owned(), true),
            ("Continue".to_owned(), true),
            ("Sign in with Fabrikam".to_owned(), true),
        ],
        "focus order or outline wrong: {walked}"
    );
    assert_eq!(focus[0]["type"], "email");
    assert!(
        focus[0]["outline"]
            .as_str()
            .is_some_and(|o| o.ends_with("rgb(15, 108, 189)")),
        "the focus ring uses the accent colour: {walked}"
    );
}

#[tokio::test]
async fn a_light_accent_still_gets_a_dark_enough_focus_ring() {
    let html = pages("#ffcc00").login(&LoginView {
        show_email_form: true,
        target: "/".into(),
        ..LoginView::default()
    });
    let walked = walk(&html, 0).await;
    let outline = walked["focus"][0]["outline"]
        .as_str()
        .expect("outline")
        .to_owned();
    assert!(outline.starts_with("solid 3px rgb("), "{outline}");
    assert!(
        !outline.ends_with("rgb(255, 204, 0)"),
        "yellow on white is not visible enough: {outline}"
    );
}

#[tokio::test]
async fn error_page_action_is_the_first_keyboard_stop() {
    let html = pages("#0f6cbd").error(
        403,
        "Access denied",
        "Your account may not use this app.",
        Some(("Sign out", "/.auth/logout")),
    );
    let walked = walk(&html, 1).await;
    let focus = walked["focus"].as_array().expect("focus list");
    assert!(focus[0].is_null(), "nothing has focus on load: {walked}");
    assert_eq!(stop(&focus[1]), ("Sign out".to_owned(), true), "{walked}");
}

/// First hour 6, in Chromium: after an unknown-domain attempt the page
/// (with its message and the email) comes from a GET, so Back from another
/// page shows the sign-in page, never "Confirm Form Resubmission".
#[tokio::test]
async fn back_after_an_unknown_domain_shows_a_page_not_a_resubmission() {
    use crate::util::{echo_route, entra, World};
    enum Back {}
    // Chromium resolves localhost to the gateway's loopback address.
    let w: World<Back> = World::<()>::builder()
        .connection(entra("contoso", "contoso.example").home_realm("contoso.example"))
        .route(echo_route("app", "localhost"))
        .start()
        .await;
    let login = w.gateway.url("localhost", "/.auth/login");
    let args = vec![
        login,
        "--email".to_owned(),
        "someone@unknown.example".to_owned(),
    ];
    let (ok, stdout, stderr) = run_script("back-button.mjs", &args, Duration::from_secs(90)).await;
    assert!(ok, "back-button.mjs failed:\n{stdout}{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("back-button.mjs printed no JSON ({e}): {stdout}"));
    let submitted = v["after_submit"]["text"].as_str().unwrap_or_default();
    assert!(
        submitted.contains("No sign-in is set up for the domain"),
        "the message after the attempt: {v}"
    );
    assert_eq!(
        v["after_back"]["error_page"], false,
        "Back asked to resubmit: {v}"
    );
    assert!(
        v["after_back"]["url"]
            .as_str()
            .unwrap_or_default()
            .contains("/.auth/login"),
        "{v}"
    );
}

/// Signs in as alice at the demo IdP through `browser-login.mjs` with the
/// extra `then` flags (each a check the script makes, see its header);
/// fails the test with the script's report when any check fails.
async fn sign_in_then(site: &crate::browser::DemoSite, url: &str, then: &[&str]) {
    let shots = tempfile::tempdir().expect("temp dir");
    let mut args: Vec<String> = [
        "--url",
        url,
        "--email",
        "alice@contoso.example",
        "--expect-header",
        "X-Forwarded-Groups~HR Admins",
        "--screenshots",
        shots.path().to_str().expect("utf-8 temp path"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(then.iter().map(|s| s.to_string()));
    let (ok, stdout, stderr) =
        run_script("browser-login.mjs", &args, Duration::from_secs(150)).await;
    assert!(ok, "browser-login.mjs {then:?} failed:\n{stderr}\n{stdout}");
    assert_eq!(stdout.trim(), format!("OK {url}"));
    assert!(
        site.idp.authorize_calls() >= 2,
        "the sign-in went through the demo IdP's picker"
    );
}

/// First hour 6, in Chromium: signed in, the person goes Back to the IdP's
/// account picker and picks the account again. That attempt's state is
/// spent, but the browser is signed in: it lands on its target (the app's
/// page of headers), never on "Sign-in expired".
#[tokio::test]
async fn back_after_signing_in_then_picking_the_account_again_lands_on_the_target() {
    let site = crate::browser::DemoSite::start().await;
    let url = site.url("/reports?quarter=3");
    sign_in_then(&site, &url, &["--then-back-and-pick-again"]).await;
    // The picker was shown (GET) and answered (POST) once, then answered
    // again after Back; the second code was never exchanged: the spent
    // callback sent the signed-in browser on.
    assert!(
        site.idp.authorize_calls() >= 3,
        "the account was picked a second time at the IdP: {} authorize calls",
        site.idp.authorize_calls()
    );
    assert_eq!(site.idp.token_calls(), 1, "one code exchanged");
    site.gateway.stop().await;
}

/// First hour 6, in Chromium: `/.auth/login` of a signed-in browser says who
/// is signed in and offers Continue (to the target) and "Use another account"
/// (the email form); `/.auth/me` names the groups the identity headers name.
#[tokio::test]
async fn a_signed_in_browser_sees_who_on_the_login_page_and_group_names_in_me() {
    let site = crate::browser::DemoSite::start().await;
    let alice = site.user("alice@contoso.example");
    let url = site.url("/reports?quarter=3");
    sign_in_then(
        &site,
        &url,
        &[
            "--then-login-page",
            &alice.name,
            "--then-me-group",
            "HR Admins",
        ],
    )
    .await;
    site.gateway.stop().await;
}
