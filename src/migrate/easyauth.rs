//! Azure App Service Authentication ("Easy Auth"): the `authsettingsV2`
//! resource as `az webapp auth show` or the ARM API returns it (the whole
//! resource with `properties`, or `properties` alone).
//!
//! Easy Auth sits inside App Service, so the file names neither the app's
//! host (taken from the resource id's site name when there is one:
//! `<site>.azurewebsites.net`) nor an upstream; the output has placeholders
//! for what is missing and a note for each. The app keeps its headers and
//! `/.auth/me` (`headers = "easyauth"`, SPEC 5.10) and its `/.auth/*` paths.

use serde_json::Value as Json;

use super::{entra_tenant, issuer_of, name_from, provider, MigrateError, Plan, Value};

fn strings(v: Option<&Json>) -> Vec<String> {
    v.and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn enabled(v: &Json) -> bool {
    v.get("enabled").and_then(Json::as_bool).unwrap_or(true)
}

/// `"08:00:00"` (or `"1.00:00:00"`) -> `"28800s"`.
fn timespan(s: &str) -> Option<String> {
    let (days, rest) = match s.split_once('.') {
        Some((d, r)) if r.contains(':') => (d.parse::<u64>().ok()?, r),
        _ => (0, s),
    };
    let mut parts = rest.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    );
    let total = days
        .checked_mul(86_400)?
        .checked_add(h.checked_mul(3600)?)?
        .checked_add(m.checked_mul(60)?)?
        .checked_add(sec)?;
    (total > 0).then(|| super::seconds(total))
}

pub fn read(text: &str) -> Result<Plan, MigrateError> {
    let root: Json = serde_json::from_str(text).map_err(|e| MigrateError::Line {
        line: e.line().max(1),
        message: format!(
            "not an Easy Auth authsettingsV2 JSON document (column {}: {e}); get one with `az webapp auth show --name <app> --resource-group <group>`",
            e.column()
        ),
    })?;
    let Some(obj) = root.as_object() else {
        return Err(MigrateError::Line {
            line: 1,
            message:
                "the document is not a JSON object (expected authsettingsV2 with identityProviders)"
                    .into(),
        });
    };
    let props = obj.get("properties").unwrap_or(&root);
    let mut plan = Plan::default();
    let at = |path: &str| path.to_string();

    // Which provider: Entra first, then the first custom OpenID Connect one.
    let idps = props
        .get("identityProviders")
        .cloned()
        .unwrap_or(Json::Null);
    let aad = idps.get("azureActiveDirectory").filter(|v| enabled(v));
    let custom: Vec<(String, Json)> = idps
        .get("customOpenIdConnectProviders")
        .and_then(Json::as_object)
        .map(|m| {
            m.iter()
                .filter(|(_, v)| enabled(v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    if let Some(aad) = aad {
        let reg = aad.get("registration").cloned().unwrap_or(Json::Null);
        plan.connection("name", Value::Str("entra".into()), "");
        let issuer = reg.get("openIdIssuer").and_then(Json::as_str).unwrap_or("");
        if entra_tenant(issuer).is_some() {
            provider(
                &mut plan,
                &issuer_of(issuer),
                "identityProviders.azureActiveDirectory.registration.openIdIssuer",
            );
        } else {
            plan.connection("type", Value::Str("entra".into()), "");
            plan.connection("tenant", Value::Str("common".into()), "");
            plan.note(
                "identityProviders.azureActiveDirectory.registration.openIdIssuer",
                format!("{issuer:?} names no tenant: set the [[connection]] tenant (and allowed_tenants for a multi-tenant app)"),
            );
        }
        if let Some(id) = reg.get("clientId").and_then(Json::as_str) {
            plan.connection(
                "client_id",
                Value::Str(id.into()),
                at("identityProviders.azureActiveDirectory.registration.clientId"),
            );
        }
        if let Some(setting) = reg.get("clientSecretSettingName").and_then(Json::as_str) {
            plan.client_secret(
                format!(
                    "the value of the App Service app setting {setting} (clientSecretSettingName)"
                ),
                "identityProviders.azureActiveDirectory.registration.clientSecretSettingName",
            );
        }
        if reg.get("clientSecretCertificateThumbprint").is_some() {
            plan.note(
                "identityProviders.azureActiveDirectory.registration.clientSecretCertificateThumbprint",
                "use that certificate with client_certificate_file and client_key_file on the connection (private_key_jwt)",
            );
        }
        login_parameters(
            &mut plan,
            aad.get("login"),
            "identityProviders.azureActiveDirectory.login",
        );
        validation(&mut plan, aad.get("validation"));
        for (name, _) in &custom {
            plan.note(
                format!("identityProviders.customOpenIdConnectProviders.{name}"),
                "another provider: add a [[connection]] of type = \"oidc\" for it, with home_realm_domains so the sign-in page picks it by email",
            );
        }
    } else if let Some((name, p)) = custom.first() {
        let reg = p.get("registration").cloned().unwrap_or(Json::Null);
        plan.connection("name", Value::Str(name_from(name, "oidc")), "");
        let cfg = reg
            .get("openIdConnectConfiguration")
            .cloned()
            .unwrap_or(Json::Null);
        let base = format!("identityProviders.customOpenIdConnectProviders.{name}");
        if let Some(wk) = cfg
            .get("wellKnownOpenIdConfiguration")
            .and_then(Json::as_str)
        {
            provider(
                &mut plan,
                &issuer_of(wk),
                &format!(
                    "{base}.registration.openIdConnectConfiguration.wellKnownOpenIdConfiguration"
                ),
            );
        } else if let Some(iss) = cfg.get("issuer").and_then(Json::as_str) {
            provider(
                &mut plan,
                iss,
                &format!("{base}.registration.openIdConnectConfiguration.issuer"),
            );
            for (k, key) in [
                ("authorizationEndpoint", "authorization_endpoint"),
                ("tokenEndpoint", "token_endpoint"),
                ("certificationUri", "jwks_uri"),
            ] {
                if let Some(v) = cfg.get(k).and_then(Json::as_str) {
                    plan.connection(
                        key,
                        Value::Str(v.into()),
                        format!("{base}.registration.openIdConnectConfiguration.{k}"),
                    );
                }
            }
        }
        if let Some(id) = reg.get("clientId").and_then(Json::as_str) {
            plan.connection(
                "client_id",
                Value::Str(id.into()),
                format!("{base}.registration.clientId"),
            );
        }
        if let Some(setting) = reg
            .get("clientCredential")
            .and_then(|c| c.get("clientSecretSettingName"))
            .and_then(Json::as_str)
        {
            plan.client_secret(
                format!(
                    "the value of the App Service app setting {setting} (clientSecretSettingName)"
                ),
                format!("{base}.registration.clientCredential.clientSecretSettingName"),
            );
        }
        if let Some(scopes) = p
            .get("login")
            .map(|l| strings(l.get("scopes")))
            .filter(|s| !s.is_empty())
        {
            let mut all = vec!["openid".to_string()];
            all.extend(scopes.into_iter().filter(|s| s != "openid"));
            plan.connection("scopes", Value::List(all), format!("{base}.login.scopes"));
        }
        if p.get("login")
            .and_then(|l| l.get("nameClaimType"))
            .is_some()
        {
            plan.note(format!("{base}.login.nameClaimType"), "X-MS-CLIENT-PRINCIPAL-NAME is the preferred username, else the verified email, else the user id");
        }
        for (other, _) in custom.iter().skip(1) {
            plan.note(
                format!("identityProviders.customOpenIdConnectProviders.{other}"),
                "another provider: add a [[connection]] of type = \"oidc\" for it, with home_realm_domains",
            );
        }
    }
    if let Some(m) = idps.as_object() {
        for (k, v) in m {
            match k.as_str() {
                "azureActiveDirectory" | "customOpenIdConnectProviders" => {}
                _ if !enabled(v) => {}
                _ => plan.note(
                    format!("identityProviders.{k}"),
                    "not mapped: realmgate signs in with Entra, OpenID Connect, SAML, WS-Federation or LDAP (a provider with an OpenID Connect interface can be a type = \"oidc\" connection)",
                ),
            }
        }
    }

    // The route.
    let site = obj
        .get("id")
        .and_then(Json::as_str)
        .and_then(|id| id.split("/sites/").nth(1))
        .and_then(|s| s.split('/').next())
        .filter(|s| !s.is_empty())
        .map(|s| s.to_ascii_lowercase());
    plan.route(
        "name",
        Value::Str(
            site.as_deref()
                .map_or_else(|| "app".into(), |s| name_from(s, "app")),
        ),
        "",
    );
    match &site {
        Some(s) => {
            plan.route(
                "hosts",
                Value::List(vec![format!("{s}.azurewebsites.net")]),
                "id (the site name)",
            );
            plan.note("id", "the host is the site's default name: add the app's custom domains to [[route]] hosts");
        }
        None => {
            plan.route("hosts", Value::List(vec!["app.example.com".into()]), "");
            plan.note("(host)", "an authsettingsV2 document names no host: replace \"app.example.com\" in [[route]] hosts with the app's host name(s)");
        }
    }
    plan.route("upstream", Value::Str("http://127.0.0.1:8080".into()), "");
    plan.note(
        "(upstream)",
        "Easy Auth ran inside App Service: set [[route]] upstream to where the app now listens",
    );
    plan.route(
        "headers",
        Value::Str("easyauth".into()),
        "Easy Auth's X-MS-CLIENT-PRINCIPAL-* headers and /.auth/me shape",
    );

    if let Some(p) = props.get("platform") {
        if p.get("enabled").and_then(Json::as_bool) == Some(false) {
            plan.note("platform.enabled", "authentication was off in App Service; realmgate signs every route in unless auth = \"optional\"");
        }
        if p.get("configFilePath").is_some() {
            plan.note(
                "platform.configFilePath",
                "the settings came from a file in the app: migrate that file's JSON instead",
            );
        }
    }
    if let Some(g) = props.get("globalValidation") {
        match g.get("unauthenticatedClientAction").and_then(Json::as_str) {
            Some("AllowAnonymous") => plan.route("auth", Value::Str("optional".into()), "globalValidation.unauthenticatedClientAction"),
            Some("Return401") | Some("Return403") => plan.note(
                "globalValidation.unauthenticatedClientAction",
                "realmgate redirects browser navigation to sign in and answers other requests 401 JSON (SPEC 5.1); there is no always-401 mode",
            ),
            _ => {}
        }
        if g.get("requireAuthentication").and_then(Json::as_bool) == Some(false)
            && g.get("unauthenticatedClientAction").and_then(Json::as_str) != Some("AllowAnonymous")
        {
            plan.route(
                "auth",
                Value::Str("optional".into()),
                "globalValidation.requireAuthentication",
            );
        }
        let excluded = strings(g.get("excludedPaths"));
        if !excluded.is_empty() {
            plan.route(
                "public",
                Value::List(excluded),
                "globalValidation.excludedPaths",
            );
        }
        if g.get("redirectToProvider").is_some() {
            plan.note("globalValidation.redirectToProvider", "realmgate picks the connection by the email's domain (home realm discovery), or goes straight to the only one");
        }
    }
    if let Some(l) = props.get("login") {
        if let Some(ts) = l.get("tokenStore") {
            if ts.get("enabled").and_then(Json::as_bool) == Some(true) {
                plan.note(
                    "login.tokenStore",
                    "realmgate keeps the tokens in its session store (session.store = \"redis\" for several replicas), refreshes them by itself and serves /.auth/refresh; tokenRefreshExtensionHours and blob/file storage have no equivalent",
                );
            }
        }
        if let Some(exp) = l.get("cookieExpiration") {
            if let Some(t) = exp
                .get("timeToExpiration")
                .and_then(Json::as_str)
                .and_then(timespan)
            {
                plan.session(
                    "lifetime",
                    Value::Str(t),
                    "login.cookieExpiration.timeToExpiration",
                );
            }
            if exp.get("convention").and_then(Json::as_str) == Some("IdentityProviderDerived") {
                plan.note("login.cookieExpiration.convention", "IdentityProviderDerived has no equivalent: session.lifetime is fixed (default 8h); tokens are refreshed within it");
            }
        }
        if !strings(l.get("allowedExternalRedirectUrls")).is_empty() {
            plan.note("login.allowedExternalRedirectUrls", "realmgate accepts return URLs on the same host or any configured route host only; add the others as routes");
        }
        if l.get("routes")
            .and_then(|r| r.get("logoutEndpoint"))
            .is_some()
        {
            plan.note(
                "login.routes.logoutEndpoint",
                "the sign-out endpoint is /.auth/logout (post_logout_redirect_uri as in Easy Auth)",
            );
        }
        if l.get("preserveUrlFragmentsForLogins")
            .and_then(Json::as_bool)
            == Some(true)
        {
            plan.note(
                "login.preserveUrlFragmentsForLogins",
                "fragments never reach a server; realmgate returns to the path and query",
            );
        }
        if l.get("nonce").is_some() {
            plan.note("login.nonce", "realmgate always sends and checks a nonce; pending sign-ins expire after 10 minutes");
        }
    }
    if let Some(h) = props.get("httpSettings") {
        if h.get("requireHttps").and_then(Json::as_bool) == Some(false) {
            plan.note("httpSettings.requireHttps", "realmgate serves plain HTTP only where it listens without TLS; cookies are Secure on HTTPS");
        }
        if let Some(prefix) = h
            .get("routes")
            .and_then(|r| r.get("apiPrefix"))
            .and_then(Json::as_str)
        {
            if prefix != "/.auth" {
                plan.note(
                    "httpSettings.routes.apiPrefix",
                    "realmgate's endpoints are always under /.auth",
                );
            }
        }
        if let Some(c) = h
            .get("forwardProxy")
            .and_then(|f| f.get("convention"))
            .and_then(Json::as_str)
        {
            if c != "NoProxy" {
                plan.note("httpSettings.forwardProxy", "realmgate believes X-Forwarded-Host/-Proto only from [server] trusted_proxies: list the addresses of the proxies in front");
            }
        }
    }
    if let Some(m) = props.as_object() {
        for k in m.keys() {
            if !matches!(
                k.as_str(),
                "platform" | "globalValidation" | "identityProviders" | "login" | "httpSettings"
            ) {
                plan.note(k.clone(), "not known to `realmgate migrate`; not mapped");
            }
        }
    }
    Ok(plan)
}

/// Entra `login.loginParameters` (`["scope=openid profile", "domain_hint=x"]`).
fn login_parameters(plan: &mut Plan, login: Option<&Json>, base: &str) {
    let Some(login) = login else { return };
    let mut params = Vec::new();
    for p in strings(login.get("loginParameters")) {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        if k == "scope" {
            let scopes: Vec<String> = v.split_whitespace().map(str::to_string).collect();
            plan.connection(
                "scopes",
                Value::List(scopes),
                format!("{base}.loginParameters"),
            );
        } else if k == "response_type" {
            plan.note(
                format!("{base}.loginParameters"),
                "realmgate always uses the code flow (response_type=code)",
            );
        } else {
            params.push((k.to_string(), v.to_string()));
        }
    }
    if !params.is_empty() {
        plan.connection(
            "upstream_params",
            Value::Map(params),
            format!("{base}.loginParameters"),
        );
    }
    if login.get("disableWWWAuthenticate").is_some() {
        plan.note(
            format!("{base}.disableWWWAuthenticate"),
            "realmgate's 401 always carries WWW-Authenticate: Bearer",
        );
    }
}

/// Entra `validation`: audiences for bearer tokens, allowed principals.
fn validation(plan: &mut Plan, v: Option<&Json>) {
    let Some(v) = v else { return };
    let base = "identityProviders.azureActiveDirectory.validation";
    let audiences = strings(v.get("allowedAudiences"));
    if !audiences.is_empty() {
        plan.route(
            "api_audiences",
            Value::List(audiences),
            format!("{base}.allowedAudiences"),
        );
    }
    let policy = v.get("defaultAuthorizationPolicy");
    let principals = policy.and_then(|p| p.get("allowedPrincipals"));
    let mut groups = strings(principals.and_then(|p| p.get("groups")));
    groups.extend(strings(
        v.get("jwtClaimChecks").and_then(|j| j.get("allowedGroups")),
    ));
    groups.dedup();
    if !groups.is_empty() {
        plan.allow(
            "groups",
            Value::List(groups),
            format!("{base}.defaultAuthorizationPolicy / jwtClaimChecks"),
        );
    }
    let ids = strings(principals.and_then(|p| p.get("identities")));
    if !ids.is_empty() {
        plan.allow(
            "users",
            Value::List(ids),
            format!("{base}.defaultAuthorizationPolicy.allowedPrincipals.identities"),
        );
    }
    if !strings(policy.and_then(|p| p.get("allowedApplications"))).is_empty()
        || !strings(
            v.get("jwtClaimChecks")
                .and_then(|j| j.get("allowedClientApplications")),
        )
        .is_empty()
    {
        plan.note(
            format!("{base} allowed applications"),
            "not mapped: realmgate's policies name users, groups, roles, tenants and claims, not calling applications (use app roles: allow.roles)",
        );
    }
}
