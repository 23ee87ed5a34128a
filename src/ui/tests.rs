use super::*;

const HOSTILE: &str = "\"><script>alert(1)</script><img src=x onerror=alert(2)>";

fn settings() -> UiSettings {
    UiSettings {
        title: "Contoso Apps".into(),
        logo_url: None,
        accent_color: "#0f6cbd".into(),
    }
}

fn pages() -> Pages {
    Pages::new(&settings())
}

fn login(view: LoginView) -> String {
    pages().login(&view)
}

fn form_view() -> LoginView {
    LoginView {
        show_email_form: true,
        target: "/".into(),
        ..LoginView::default()
    }
}

/// The markup of the element that contains `needle`, from its `<` to its `>`.
fn tag_containing<'a>(html: &'a str, needle: &str) -> &'a str {
    let at = html
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in page:\n{html}"));
    let start = html[..at].rfind('<').expect("tag start");
    let end = at + html[at..].find('>').expect("tag end");
    &html[start..=end]
}

fn assert_no_markup_from(html: &str, hostile: &str) {
    assert!(
        !html.contains(hostile),
        "hostile input appears unescaped:\n{html}"
    );
    assert!(
        !html.contains("<script"),
        "a script element made it into the page:\n{html}"
    );
    assert!(
        !html.contains("<img src=x"),
        "an injected element made it into the page:\n{html}"
    );
}

/// True if some attribute looks like `onclick=`.
fn has_event_handler(html: &str) -> bool {
    html.match_indices(" on").any(|(at, _)| {
        let rest = &html[at + 3..];
        let name_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        name_len > 0 && rest[name_len..].starts_with('=')
    })
}

#[test]
fn every_embedded_template_compiles() {
    let pages = pages();
    for (name, _) in TEMPLATES {
        assert!(
            pages.env.get_template(name).is_ok(),
            "{name} does not compile"
        );
    }
}

#[test]
fn login_page_has_a_labelled_email_field_posting_to_the_login_endpoint() {
    let html = login(form_view());
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("<html lang=\"en\">"));
    assert!(html.contains("<h1>Sign in</h1>"));
    assert!(html.contains("<form method=\"post\" action=\"/.auth/login\">"));
    assert!(html.contains("<label for=\"email\">Email address</label>"));
    let input = tag_containing(&html, "id=\"email\"");
    for attr in [
        "type=\"email\"",
        "name=\"email\"",
        "autocomplete=\"username\"",
        " required",
        " autofocus",
    ] {
        assert!(input.contains(attr), "email input lacks {attr}: {input}");
    }
    assert!(html.contains("<button type=\"submit\" class=\"btn btn-primary\">Continue</button>"));
    assert!(!html.contains("role=\"alert\""), "no message, no alert");
}

#[test]
fn hostile_email_is_escaped_in_the_value_attribute() {
    let html = login(LoginView {
        email: HOSTILE.into(),
        ..form_view()
    });
    assert_no_markup_from(&html, HOSTILE);
    let input = tag_containing(&html, "id=\"email\"");
    assert!(
        input.contains("value=\"&quot;&gt;&lt;script&gt;alert(1)&lt;"),
        "email not escaped as expected: {input}"
    );
}

#[test]
fn target_travels_escaped_in_the_hidden_field() {
    let target = "/reports?a=1&b=\"><script>x</script>";
    let html = login(LoginView {
        target: target.into(),
        ..form_view()
    });
    assert_no_markup_from(&html, target);
    let hidden = tag_containing(&html, "name=\"post_login_redirect_uri\"");
    assert!(hidden.contains("type=\"hidden\""), "{hidden}");
    assert!(
        hidden.contains(
            "value=\"&#x2f;reports?a=1&amp;b=&quot;&gt;&lt;script&gt;x&lt;&#x2f;script&gt;\""
        ),
        "target not escaped as expected: {hidden}"
    );
}

#[test]
fn forwarded_parameters_travel_escaped_in_hidden_fields() {
    let html = login(LoginView {
        forward: vec![
            ("prompt".into(), "login".into()),
            (HOSTILE.into(), HOSTILE.into()),
        ],
        ..form_view()
    });
    assert_no_markup_from(&html, HOSTILE);
    let prompt = tag_containing(&html, "name=\"prompt\"");
    assert_eq!(
        prompt,
        "<input type=\"hidden\" name=\"prompt\" value=\"login\">"
    );
    assert!(
        html.contains("name=\"&quot;&gt;&lt;script&gt;alert(1)&lt;"),
        "{html}"
    );
    // Only in the email form: without it, no field.
    let html = login(LoginView {
        forward: vec![("prompt".into(), "login".into())],
        show_email_form: false,
        ..LoginView::default()
    });
    assert!(!html.contains("name=\"prompt\""), "{html}");
}

#[test]
fn message_is_an_alert_described_by_the_email_field() {
    let html = login(LoginView {
        email: "jo@unknown.example".into(),
        message: Some(format!("No organization uses {HOSTILE}")),
        ..form_view()
    });
    assert_no_markup_from(&html, HOSTILE);
    let alert = tag_containing(&html, "role=\"alert\"");
    assert!(alert.contains("aria-live=\"assertive\""), "{alert}");
    assert!(alert.contains("id=\"login-message\""), "{alert}");
    assert!(html.contains("No organization uses &quot;&gt;&lt;script&gt;"));
    let input = tag_containing(&html, "id=\"email\"");
    assert!(
        input.contains("aria-describedby=\"login-message\""),
        "{input}"
    );
    assert!(input.contains("aria-invalid=\"true\""), "{input}");
    assert!(
        input.contains("value=\"jo@unknown.example\""),
        "email kept: {input}"
    );
}

#[test]
fn an_empty_message_shows_no_alert() {
    let html = login(LoginView {
        message: Some(String::new()),
        ..form_view()
    });
    assert!(!html.contains("role=\"alert\""));
}

#[test]
fn buttons_are_links_styled_as_buttons_with_escaped_labels() {
    let html = login(LoginView {
        buttons: vec![
            LoginButton {
                label: "Fabrikam".into(),
                href: "/.auth/login/fabrikam?post_login_redirect_uri=%2F".into(),
            },
            LoginButton {
                label: HOSTILE.into(),
                href: "/.auth/login/partner".into(),
            },
        ],
        ..form_view()
    });
    assert_no_markup_from(&html, HOSTILE);
    let fabrikam = tag_containing(&html, "login&#x2f;fabrikam");
    assert!(
        fabrikam.starts_with("<a class=\"btn btn-secondary\" href=\""),
        "{fabrikam}"
    );
    assert!(html.contains(">Sign in with Fabrikam</a>"));
    assert!(html.contains(">Sign in with &quot;&gt;&lt;script&gt;"));
    assert!(
        html.contains("<div class=\"divider\">or</div>"),
        "form and buttons are separated"
    );
}

#[test]
fn buttons_only_page_has_no_form() {
    let html = login(LoginView {
        buttons: vec![LoginButton {
            label: "Contoso".into(),
            href: "/.auth/login/contoso".into(),
        }],
        ..LoginView::default()
    });
    assert!(!html.contains("<form"));
    assert!(!html.contains("class=\"divider\""));
    assert!(html.contains(">Sign in with Contoso</a>"));
}

#[test]
fn buttons_with_unsafe_links_are_left_out() {
    let hrefs = [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "data:text/html,<script>",
        "//evil.example/",
        "/\\evil.example/",
        " https://evil.example/",
        "/ok\nx",
    ];
    let html = login(LoginView {
        buttons: hrefs
            .iter()
            .map(|h| LoginButton {
                label: "Bad".into(),
                href: (*h).into(),
            })
            .collect(),
        ..form_view()
    });
    assert!(!html.contains("Sign in with Bad"), "{html}");
    assert!(!html.contains("javascript"), "{html}");
}

#[test]
fn a_page_with_nothing_to_offer_says_whom_to_contact() {
    let html = login(LoginView::default());
    assert!(!html.contains("<form"));
    assert!(html.contains("Contact your administrator"));
}

/// First hour 6: a page answered with 200 (signed out, front-channel
/// logout) is no error: no "Error 200" above its title.
#[test]
fn a_page_answered_with_200_shows_no_error_status() {
    let html = pages().error(200, "You are signed out", "Bye.", None);
    assert!(
        !html.contains("Error 200") && !html.contains("class=\"status\""),
        "{html}"
    );
    assert!(html.contains("<h1>You are signed out</h1>"));
}

#[test]
fn the_signed_in_page_escapes_the_name_and_keeps_links_on_this_site() {
    let html = pages().signed_in("<b>Zoë</b>", "Contoso", "/reports", "/.auth/login?switch=1");
    assert!(html.contains("&lt;b&gt;Zoë&lt;&#x2f;b&gt;"), "{html}");
    assert!(
        html.contains("href=\"&#x2f;reports\">Continue</a>"),
        "{html}"
    );
    let html = pages().signed_in("A", "", "javascript:alert(1)", "https://evil.example/");
    assert!(
        !html.contains("javascript:") && !html.contains("evil"),
        "{html}"
    );
    assert!(html.contains("href=\"&#x2f;\">Continue</a>"), "{html}");
}

#[test]
fn error_page_shows_status_title_message_and_action() {
    let html = pages().error(
        403,
        "You don't have access",
        "Your account is not allowed to use this app.",
        Some(("Sign out", "/.auth/logout")),
    );
    assert!(html.contains("<p class=\"status\">Error 403</p>"));
    assert!(html.contains("<h1>You don&#x27;t have access</h1>"));
    assert!(html.contains("Your account is not allowed to use this app."));
    assert!(
        html.contains("<a class=\"btn btn-primary\" href=\"&#x2f;.auth&#x2f;logout\">Sign out</a>")
    );
    assert!(html.contains("<title>You don&#x27;t have access · Contoso Apps</title>"));
}

#[test]
fn error_page_escapes_everything_and_drops_unsafe_actions() {
    let html = pages().error(
        500,
        HOSTILE,
        HOSTILE,
        Some((HOSTILE, "javascript:alert(1)")),
    );
    assert_no_markup_from(&html, HOSTILE);
    assert!(!html.contains("javascript:"));
    assert!(!html.contains("class=\"actions\""));
    let html = pages().error(502, "Bad gateway", "Try again.", None);
    assert!(!html.contains("class=\"actions\""));
}

#[test]
fn hostile_title_is_escaped_everywhere() {
    let pages = Pages::new(&UiSettings {
        title: format!("</title>{HOSTILE}"),
        ..settings()
    });
    let html = pages.login(&form_view());
    assert_no_markup_from(&html, HOSTILE);
    assert_eq!(html.matches("</title>").count(), 1, "{html}");
}

#[test]
fn logo_is_shown_only_for_urls_the_policy_allows() {
    let shown = |url: &str| {
        let pages = Pages::new(&UiSettings {
            logo_url: Some(url.into()),
            ..settings()
        });
        pages.login(&form_view()).contains("<img src=")
    };
    assert!(shown("https://cdn.contoso.com/logo.svg"));
    assert!(shown("data:image/png;base64,iVBORw0KGgo="));
    assert!(shown("/static/logo.png"));
    assert!(!shown("http://cdn.contoso.com/logo.svg"));
    assert!(!shown("javascript:alert(1)"));
    assert!(!shown("data:text/html,<script>alert(1)</script>"));
    assert!(!shown("//evil.example/logo.png"));
}

#[test]
fn default_title_is_not_repeated_above_the_heading() {
    let pages = Pages::new(&UiSettings {
        title: "Sign in".into(),
        ..settings()
    });
    let html = pages.login(&form_view());
    assert!(!html.contains("class=\"product\""));
    assert!(!html.contains("class=\"brand\""));
    let branded = login(form_view());
    assert!(branded.contains("<span class=\"product\">Contoso Apps</span>"));
}

#[test]
fn pages_load_nothing_from_elsewhere_and_run_no_script() {
    for html in [
        login(form_view()),
        pages().error(404, "Not found", "Nothing here.", Some(("Home", "/"))),
    ] {
        assert!(!html.contains("<script"));
        assert!(!html.contains("<link"));
        assert!(!html.contains("http://"));
        assert!(!html.contains("https://"));
        assert!(!has_event_handler(&html), "no inline event handlers");
        assert!(html.contains("<meta name=\"viewport\""));
    }
}

#[test]
fn accent_colour_drives_the_primary_button_and_focus_ring() {
    let html = login(form_view());
    assert!(html.contains("--accent: #0f6cbd;"));
    assert!(html.contains("--on-accent: #ffffff;"));
    assert!(
        html.contains("--accent-text: #0f6cbd;"),
        "already AA on white"
    );
}

#[test]
fn light_accent_gets_dark_text_and_a_darker_link_colour() {
    let brand = Brand::new(&UiSettings {
        accent_color: "#fc0".into(),
        ..settings()
    });
    assert_eq!(brand.accent, "#ffcc00");
    assert_eq!(brand.on_accent, "#000000");
    let text = parse_hex_colour(&brand.accent_text).expect("hex");
    assert!(contrast(text, [255; 3]) >= 4.5, "{}", brand.accent_text);
}

#[test]
fn text_on_any_accent_meets_aa_contrast() {
    for accent in [
        "#000", "#fff", "#ff0000", "#777777", "#767676", "#00ff00", "#0000ff", "#808080", "#e0b000",
    ] {
        let brand = Brand::new(&UiSettings {
            accent_color: accent.into(),
            ..settings()
        });
        let bg = parse_hex_colour(&brand.accent).expect("hex");
        let fg = parse_hex_colour(&brand.on_accent).expect("hex");
        assert!(contrast(bg, fg) >= 4.5, "{accent}: {}", contrast(bg, fg));
        let hover = parse_hex_colour(&brand.accent_hover).expect("hex");
        assert!(
            contrast(hover, fg) >= contrast(bg, fg),
            "{accent}: hover lowers contrast"
        );
        let text = parse_hex_colour(&brand.accent_text).expect("hex");
        assert!(
            contrast(text, [255; 3]) >= 4.5,
            "{accent}: link colour on white"
        );
    }
}

#[test]
fn unusable_accent_colour_falls_back_to_the_default() {
    for bad in ["red", "#12", "#1234567", "#ggg", "", "#ff\"><", "#éé"] {
        let brand = Brand::new(&UiSettings {
            accent_color: bad.into(),
            ..settings()
        });
        assert_eq!(brand.accent, "#0f6cbd", "{bad:?}");
    }
}

#[test]
fn fallback_page_escapes() {
    let html = fallback_page(HOSTILE, HOSTILE);
    assert_no_markup_from(&html, HOSTILE);
}

#[test]
fn csp_lets_the_login_form_redirect_to_an_http_provider_but_allows_no_script() {
    let directive = |name: &str| {
        CONTENT_SECURITY_POLICY
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert_eq!(directive("default-src"), "default-src 'none'");
    assert_eq!(directive("form-action"), "form-action 'self' https: http:");
    assert_eq!(directive("frame-ancestors"), "frame-ancestors 'none'");
    assert!(!CONTENT_SECURITY_POLICY.contains("script-src"));
}

#[test]
fn logout_confirmation_posts_to_the_logout_endpoint_with_the_target() {
    let html = pages().confirm_logout("/.auth/logout?post_logout_redirect_uri=%2Fbye&x=1");
    let form = tag_containing(&html, "method=\"post\"");
    assert!(form.starts_with("<form"), "{form}");
    // minijinja escapes `/` and `&` in attributes; the browser undoes it.
    assert!(
        form.contains("action=\"&#x2f;.auth&#x2f;logout?post_logout_redirect_uri=%2Fbye&amp;x=1\""),
        "{form}"
    );
    assert!(html.contains("<button type=\"submit\" class=\"btn btn-primary\">Sign out</button>"));
    assert!(html.contains("<h1>Sign out?</h1>"));
    assert!(
        html.contains("<a class=\"btn btn-secondary\" href=\"/\">Stay signed in</a>"),
        "{html}"
    );
    // Branded like every other page, with nothing loaded or run.
    assert!(html.contains("<span class=\"product\">Contoso Apps</span>"));
    assert!(!html.contains("<script") && !html.contains("<link"));
    assert!(!has_event_handler(&html));
}

#[test]
fn logout_confirmation_never_posts_anywhere_else() {
    for hostile in [
        HOSTILE,
        "https://evil.example/.auth/logout",
        "//evil.example/.auth/logout",
        "/.auth/login",
        "javascript:alert(1)",
        "/.auth/logout\r\n<script>",
        "",
    ] {
        let html = pages().confirm_logout(hostile);
        if !hostile.is_empty() {
            assert_no_markup_from(&html, hostile);
        }
        let form = tag_containing(&html, "method=\"post\"");
        assert!(
            form.contains("action=\"&#x2f;.auth&#x2f;logout\""),
            "{hostile:?}: {form}"
        );
    }
}

#[test]
fn notice_page_has_plain_links_and_never_an_unsafe_one() {
    let pages = pages();
    let html = pages.notice(
        "Your password expires soon",
        "Your password expires in 3 days. <b>",
        Some(("Change your password", "https://pw.example/change?a=1&b=2")),
        "/reports?q=1",
    );
    assert!(html.contains("<h1>Your password expires soon</h1>"));
    assert!(html.contains("in 3 days. &lt;b&gt;"), "escaped: {html}");
    assert!(html.contains(">Change your password</a>"));
    assert!(html.contains("&amp;b=2"));
    assert!(html.contains(">Continue</a>"));
    assert!(html.contains("href=\"&#x2f;reports?q=1\""), "{html}");
    assert!(!html.contains("<script") && !has_event_handler(&html));
    // A target or link that is not a path or http(s): left out / "/".
    let html = pages.notice(
        "t",
        "m",
        Some(("Change", "javascript:alert(1)")),
        "//evil.example/",
    );
    assert!(!html.contains("javascript:"), "{html}");
    assert!(!html.contains("evil.example"), "{html}");
    assert!(html.contains("href=\"&#x2f;\">Continue</a>"), "{html}");
}
