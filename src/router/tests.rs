use super::*;

fn route(name: &str, hosts: &[&str], prefix: &str) -> Arc<RouteSettings> {
    let toml = format!(
        r#"
[session]
secret = "0123456789abcdef0123456789abcdef0123"
[[connection]]
name = "c"
type = "oidc"
issuer = "http://127.0.0.1:9/"
client_id = "x"
client_secret = "y"
[[route]]
name = "{name}"
hosts = [{}]
path_prefix = "{prefix}"
upstream = "http://127.0.0.1:9000"
"#,
        hosts
            .iter()
            .map(|h| format!("{h:?}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let settings = crate::config::load_str(&toml).expect("valid test config");
    settings.routes[0].clone()
}

fn router() -> Router {
    Router::new(&[
        route("root", &["app.example.com"], "/"),
        route("api", &["app.example.com"], "/api"),
        route("api-v2", &["app.example.com"], "/api/v2/"),
        route("other", &["other.example.com", "127.0.0.1", "::1"], "/"),
        route("only-sub", &["sub.example.com"], "/sub"),
    ])
}

fn name(r: &Router, host: &str, path: &str) -> Option<String> {
    r.find(host, path).map(|r| r.name.clone())
}

#[test]
fn host_matches_case_insensitively_ignoring_port_and_trailing_dot() {
    let r = router();
    for host in [
        "app.example.com",
        "APP.Example.COM",
        "app.example.com:8443",
        "app.example.com.",
        "app.example.com.:80",
    ] {
        assert_eq!(name(&r, host, "/").as_deref(), Some("root"), "{host}");
    }
    assert_eq!(name(&r, "127.0.0.1:8080", "/").as_deref(), Some("other"));
    assert_eq!(name(&r, "[::1]:8080", "/").as_deref(), Some("other"));
    assert_eq!(name(&r, "[0:0::1]", "/").as_deref(), Some("other"));
}

#[test]
fn longest_prefix_wins_on_segment_boundaries() {
    let r = router();
    assert_eq!(name(&r, "app.example.com", "/api").as_deref(), Some("api"));
    assert_eq!(
        name(&r, "app.example.com", "/api/x").as_deref(),
        Some("api")
    );
    assert_eq!(
        name(&r, "app.example.com", "/api/v2").as_deref(),
        Some("api-v2")
    );
    assert_eq!(
        name(&r, "app.example.com", "/api/v2/users").as_deref(),
        Some("api-v2")
    );
    assert_eq!(
        name(&r, "app.example.com", "/apix").as_deref(),
        Some("root")
    );
    assert_eq!(
        name(&r, "app.example.com", "/api/v20").as_deref(),
        Some("api")
    );
}

#[test]
fn unknown_host_and_unmatched_prefix_are_told_apart() {
    let r = router();
    assert!(matches!(
        r.lookup("evil.example.com", "/"),
        Lookup::UnknownHost
    ));
    assert!(matches!(r.lookup("example.com", "/"), Lookup::UnknownHost));
    assert!(matches!(r.lookup("sub.example.com", "/"), Lookup::NoPrefix));
    assert!(matches!(
        r.lookup("sub.example.com", "/sub/a"),
        Lookup::Found(_)
    ));
}

#[test]
fn hostile_host_values_match_nothing() {
    let r = router();
    for host in [
        "",
        ":",
        ":80",
        "app.example.com:",
        "app.example.com:99999999",
        "app.example.com:99999",
        "app.example.com:65536",
        "app.example.com:80:80",
        "user@app.example.com",
        "app.example.com/evil",
        "app.example.com\r\nx",
        "app example.com",
        "[::1",
        "[::1]x",
        "[zz]",
        "app.example.com..",
    ] {
        assert!(r.find(host, "/").is_none(), "{host:?}");
    }
}

#[test]
fn a_path_that_reads_as_another_route_is_ambiguous() {
    let r = router();
    for path in [
        // Encoded slashes, parameters, merged slashes and encodings select
        // another route in some server's reading.
        "/api%2Fkeys",
        "/%61pi/keys",
        "/api;x=1/keys",
        "//api/keys",
        "/api/v2%2Fx",
        // Refused outright (`pathnorm::PathError`).
        "/api;x=1/../../etc",
        "/api/..%2F..%2Fadmin",
        "/api\\keys",
        "/%2561pi/keys",
        // A decoded `?`/`#` ends the path for some readers (review finding).
        "/api%3F/keys",
        "/api%23/keys",
        "/api/v2%3Fx",
    ] {
        assert!(
            matches!(r.lookup("app.example.com", path), Lookup::AmbiguousPath),
            "{path}"
        );
    }
    // A refused path on an unknown host is still an unknown host.
    assert!(matches!(
        r.lookup("nowhere.example.com", "/a/..;/b"),
        Lookup::UnknownHost
    ));
}

/// A target starting with `//` is a network-path reference to URL parsers
/// (WHATWG `new URL(req.url, base)`, PHP's `parse_url`, Python's
/// `urlsplit`, Java's `URI`): its first segment is a host, and
/// `//x/api/keys` is the path `/api/keys` to them (review 11). Judged
/// under `/`, it was served from `/api`.
#[test]
fn a_network_path_reference_naming_another_route_is_ambiguous() {
    let r = router();
    for path in [
        "//x/api/keys",
        "//app.example.com/api",
        "///x/api/keys",
        "//x//api/keys",
        "//x/api/v2/y",
        "//x/API/keys",
        "//api/x/api/keys",
    ] {
        assert!(
            matches!(r.lookup("app.example.com", path), Lookup::AmbiguousPath),
            "{path}"
        );
    }
    // Every reading under the same route: judged as before.
    assert_eq!(
        name(&r, "app.example.com", "//x/docs").as_deref(),
        Some("root")
    );
    assert_eq!(name(&r, "app.example.com", "//x").as_deref(), Some("root"));
    // One route per host: nothing to confuse.
    assert_eq!(
        name(&r, "other.example.com", "//x/api/keys").as_deref(),
        Some("other")
    );
}

#[test]
fn a_path_covers_the_routes_whose_prefixes_lie_below_it() {
    let r = router();
    let routes = |host: &str, path: &str| {
        let target = CanonicalTarget::parse(path).unwrap();
        let judged = r.find(host, path).unwrap().clone();
        r.covers_another_route(host, &target, &judged)
    };
    for path in ["/", "/api", "/api/"] {
        assert!(routes("app.example.com", path), "{path}");
    }
    for path in ["/docs", "/apix", "/api/v2", "/api/v2/x", "/api/v3"] {
        assert!(!routes("app.example.com", path), "{path}");
    }
    assert!(!routes("other.example.com", "/"));
}

#[test]
fn dot_segments_are_judged_in_their_canonical_form() {
    // The canonical form is what is forwarded, so it decides (SPEC 6.1).
    let r = router();
    for (path, route) in [
        ("/api/../admin", "root"),
        ("/x/../api/keys", "api"),
        ("/api/%2e%2e/admin", "root"),
        ("/api/a/../b", "api"),
        ("/docs/./x", "root"),
        ("/api//../v2/x", "api-v2"),
        ("/x/../api/v2/y", "api-v2"),
    ] {
        assert_eq!(
            name(&r, "app.example.com", path).as_deref(),
            Some(route),
            "{path}"
        );
    }
    // A host with one route has nothing to confuse.
    assert_eq!(
        name(&r, "other.example.com", "/a/../%2e%2e/b").as_deref(),
        Some("other")
    );
    assert_eq!(
        name(&r, "other.example.com", "/a%2Fb;c//d").as_deref(),
        Some("other")
    );
}

/// Upstreams that match paths loosely (case-insensitively, Windows's
/// trailing dots and spaces, ASP.NET's cookieless segments, Unicode
/// compatibility forms) would serve these under `/api`; the judged form
/// picks `root`, so they are refused rather than judged under the laxer
/// route (review 9).
#[test]
fn a_path_that_loose_matching_reads_as_another_route_is_ambiguous() {
    let r = router();
    for path in [
        "/API/keys",
        "/Api",
        "/aPi/v2/x",
        "/api./keys",
        "/api%20/keys",
        "/api.%20./keys",
        "/(S(abc123))/api/keys",
        "/(A(x)F(y))/api",
        "/%EF%BD%81pi/keys",     // fullwidth a
        "/ap%C4%B1/keys",        // dotless i: .NET's ignore-case reads it as I
        "/ap%C4%B0/keys",        // dotted capital I: Java lowers it to i
        "/x/%EF%B8%B0/api/keys", // NFKC reads U+FE30 as `..`
        "/api/v2./x",            // the judged `/api` against `/api/v2/` loosely
        "/api/V2/x",
    ] {
        assert!(
            matches!(r.lookup("app.example.com", path), Lookup::AmbiguousPath),
            "{path}"
        );
    }
    // Paths whose loose reading selects the same route pass as before.
    for (path, route) in [
        ("/api/KEYS", "api"),
        ("/api/v2/Users.", "api-v2"),
        ("/Docs/x", "root"),
        ("/apix", "root"),
        ("/APIX", "root"),
        ("/(S(abc))/docs", "root"),
        ("/api/(S(abc))/x", "api"),
    ] {
        assert_eq!(
            name(&r, "app.example.com", path).as_deref(),
            Some(route),
            "{path}"
        );
    }
    // One route per host: nothing to confuse, every variant passes.
    assert_eq!(
        name(&r, "sub.example.com", "/SUB/x").as_deref(),
        None,
        "still a byte-exact prefix"
    );
    assert_eq!(
        name(&r, "other.example.com", "/API/x").as_deref(),
        Some("other")
    );
}

#[test]
fn loose_form() {
    assert_eq!(loose("/api/keys"), "/api/keys");
    assert!(
        matches!(loose("/API/Keys"), Cow::Borrowed(_)),
        "ASCII case is folded when compared"
    );
    assert_eq!(loose("/Api./Ke ys%20"), "/api/ke ys%20");
    assert_eq!(loose("/a. . /b"), "/a/b");
    assert_eq!(loose("/(S(x))/(A(y)F(z))/App"), "/app");
    assert_eq!(loose("/(x)/a"), "/(x)/a");
    assert_eq!(loose("/(S(x)/a"), "/(s(x)/a");
    assert_eq!(loose("/\u{ff21}dmin/stra\u{df}e"), "/admin/strasse");
    assert_eq!(loose("/\u{131}/\u{17f}/\u{130}"), "/i/s/i");
}

/// A lax `/` and a strict `/projects/secret` on dav.test.
fn dav_router() -> (Router, Arc<RouteSettings>) {
    let root = route("root", &["dav.test"], "/");
    let r = Router::new(&[
        root.clone(),
        route("secret", &["dav.test"], "/projects/secret"),
    ]);
    (r, root)
}

/// Review 11 (helper C): a collection method on another reading of an
/// ancestor (`;x` stripped, `//` merged, `%5C` as `/`, a network path) acts
/// on the stricter route's folder at some server, as the plain spelling does.
#[test]
fn collection_methods_on_any_reading_of_an_ancestor_are_refused() {
    let (r, root) = dav_router();
    let headers = http::HeaderMap::new();
    for path in [
        "/projects",
        "/projects/",
        "/projects%2F",
        "/PROJECTS",
        "/projects;x",
        "/projects/;x",
        "//projects/",
        "/projects%5C",
        "//x/projects",
    ] {
        let target = CanonicalTarget::parse(path).unwrap();
        assert!(
            matches!(r.lookup_target("dav.test", &target), Lookup::Found(rt) if Arc::ptr_eq(rt, &root)),
            "{path}"
        );
        for method in [
            http::Method::DELETE,
            http::Method::from_bytes(b"delete").unwrap(),
            // Their bodies name what they reach, at any Depth.
            http::Method::from_bytes(b"REPORT").unwrap(),
            http::Method::from_bytes(b"SEARCH").unwrap(),
            http::Method::from_bytes(b"UNBIND").unwrap(),
        ] {
            assert!(
                crate::phase::route::check_subtree(
                    &r, "dav.test", &method, &headers, &root, &target
                )
                .is_err(),
                "{method} {path}"
            );
        }
    }
    // A sibling is not an ancestor.
    let target = CanonicalTarget::parse("/projects-old").unwrap();
    assert!(crate::phase::route::check_subtree(
        &r,
        "dav.test",
        &http::Method::DELETE,
        &headers,
        &root,
        &target
    )
    .is_ok());
}

/// Review 11 (helper C): a `Destination` that is neither an absolute path
/// nor an http(s) URL is refused: Go's x/net/webdav and sabre/dav find the
/// stricter route's path in these spellings too.
#[test]
fn destinations_other_than_absolute_paths_and_http_urls_are_refused() {
    let (r, root) = dav_router();
    for (dest, ok) in [
        ("/notes/x", true),
        ("https://dav.test/notes/x", true),
        ("HTTP://dav.test/notes/x", true),
        ("/projects/secret/x", false),
        ("https://dav.test/projects/secret/x", false),
        ("x://dav.test/projects/secret/x", false),
        ("x:/projects/secret/x", false),
        ("http:/projects/secret/x", false),
        ("projects/secret/x", false),
        ("notes/x", false),
        ("/projects;x", false),
        ("//projects/", false),
    ] {
        let mut headers = http::HeaderMap::new();
        headers.insert("destination", http::HeaderValue::from_str(dest).unwrap());
        assert_eq!(
            crate::phase::route::check_destination(&r, "dav.test", &headers, &root, false).is_ok(),
            ok,
            "{dest}"
        );
    }
}

#[test]
fn a_path_that_a_front_controller_or_a_format_suffix_reads_as_another_route_is_ambiguous() {
    // Review 12: Symfony, Laravel and Drupal route `/index.php/api/keys` as
    // `/api/keys`; Rails and Spring's suffix match route `/api.json` as `/api`;
    // Next.js answers `/_next/data/<id>/api/keys.json` with `/api/keys`'s data.
    let r = router();
    for path in [
        "/index.php/api/keys",
        "/index.php/api",
        "/INDEX.PHP/api/keys",
        "/index%2ephp/api/keys",
        "/app.php/api/v2/x",
        "/index.php//api/keys",
        "/api.json",
        "/api.html",
        "/API.json",
        "/api.json/",
        "/api/v2.json",
        "/api.v1.json",
        "/index.php;x/api/keys",
        "/_next/data/b1d-Id/api/keys.json",
        "/_next/data/b1d-Id/api.json",
        "/docs/../_next/data/x/api/v2/users.json",
    ] {
        assert!(
            matches!(r.lookup("app.example.com", path), Lookup::AmbiguousPath),
            "{path}"
        );
    }
    // Readings that stay on the judged route, and dots inside a route's own
    // prefix, pass as before.
    let with_dots = Router::new(&[
        route("root", &["app.example.com"], "/"),
        route("api", &["app.example.com"], "/api"),
        route("v12", &["app.example.com"], "/v1.2"),
        route("legacy", &["app.example.com"], "/legacy/index.php"),
        route("next", &["app.example.com"], "/_next"),
    ]);
    for (path, route) in [
        ("/index.php", "root"),
        ("/index.php/", "root"),
        ("/index.php/docs/x", "root"),
        ("/style.css", "root"),
        ("/apix.json", "root"),
        ("/.well-known/jwks.json", "root"),
        ("/api/keys.json", "api"),
        ("/api/index.php/x", "api"),
        ("/v1.2", "v12"),
        ("/v1.2/x.json", "v12"),
        ("/legacy/index.php/x", "legacy"),
        ("/api/_next/data/b1d-Id/x.json", "api"),
        ("/_next/static/app.js", "next"),
    ] {
        assert_eq!(
            name(&with_dots, "app.example.com", path).as_deref(),
            Some(route),
            "{path}"
        );
    }
    for path in [
        "/_next/data/b1d-Id/docs.json",
        "/_next/data/b1d-Id/index.json",
    ] {
        assert_eq!(
            name(&r, "app.example.com", path).as_deref(),
            Some("root"),
            "{path}"
        );
    }
    // A page's data below a route of its own is still that page's.
    assert!(matches!(
        with_dots.lookup("app.example.com", "/_next/data/b1d-Id/api/keys.json"),
        Lookup::AmbiguousPath
    ));
    // One route per host: nothing to confuse.
    assert_eq!(
        name(&r, "other.example.com", "/index.php/api.json").as_deref(),
        Some("other")
    );
}

#[test]
fn a_next_data_path_of_an_index_page_or_in_another_case_reads_as_that_page() {
    // Review 12 (C12): Next.js drops a page path's leading `/index/`
    // (`denormalizePagePath`: the page `/index/x`'s data is
    // `/index/index/x.json`), so `/_next/data/<id>/index/admin/users.json`
    // is the data of `/admin/users`; and before its router server (13.4)
    // it matched `/_next/data/:path*` case-insensitively.
    let r = Router::new(&[
        route("root", &["app.example.com"], "/"),
        route("admin", &["app.example.com"], "/admin"),
    ]);
    for path in [
        "/_next/data/b1d-Id/index/admin/users.json",
        "/_next/data/b1d-Id/index/admin.json",
        "/_NEXT/DATA/b1d-Id/admin/users.json",
        "/_next/Data/b1d-Id/index/admin.json",
    ] {
        assert!(
            matches!(r.lookup("app.example.com", path), Lookup::AmbiguousPath),
            "{path}"
        );
    }
    for path in [
        "/_next/data/b1d-Id/index.json",
        "/_next/data/b1d-Id/index/docs.json",
        "/_next/data/b1d-Id/index/index/admin.json",
        "/_next/data/b1d-Id/indexadmin.json",
        "/app/_next/data/b1d-Id/index/admin.json",
    ] {
        assert_eq!(
            name(&r, "app.example.com", path).as_deref(),
            Some("root"),
            "{path}"
        );
    }
}

#[test]
fn a_php_front_controller_below_a_folder_reads_what_follows_it() {
    // Review 12 (C12): with the front controller in a folder the URLs do
    // not show (Laravel's `public/index.php` behind a root rewrite, Symfony's
    // `web/app.php`), Symfony takes `SCRIPT_NAME` (`/public/index.php`) as
    // the base URL wherever it occurs in the request URI: both
    // `/public/index.php/admin/users` and `/x/public/index.php/admin/users`
    // are `/admin/users` to it.
    let r = Router::new(&[
        route("root", &["app.example.com"], "/"),
        route("admin", &["app.example.com"], "/admin"),
        route("shop", &["app.example.com"], "/shop"),
        route("shop-admin", &["app.example.com"], "/shop/admin"),
    ]);
    for path in [
        "/public/index.php/admin/users",
        "/x/public/index.php/admin",
        "/web/app.php/admin",
        "/shop/public/index.php/admin/x",
    ] {
        assert!(
            matches!(r.lookup("app.example.com", path), Lookup::AmbiguousPath),
            "{path}"
        );
    }
    for (path, route) in [
        ("/w/index.php/Main_Page", "root"),
        ("/public/index.php/docs", "root"),
        ("/public/index.php/administration", "root"),
        ("/shop/public/index.php/cart", "shop"),
        ("/shop/index.php", "shop"),
        ("/admin/index.php/x", "admin"),
    ] {
        assert_eq!(
            name(&r, "app.example.com", path).as_deref(),
            Some(route),
            "{path}"
        );
    }
}

#[test]
fn framework_readings_never_panic_on_odd_paths() {
    // Review 12 (C12): index arithmetic on generated paths (multi-byte
    // characters, tiny paths, every `keep`), and the router and `public`
    // that call it.
    const PIECES: &[&str] = &[
        "/",
        "/",
        "//",
        ".",
        "..",
        "php",
        ".php",
        ".PHP",
        "/_next/data/",
        "_next",
        "data",
        "/index",
        "index",
        ".json",
        "json",
        "é",
        "ß",
        "ａ",
        "\u{10348}",
        "a",
        "%2F",
        "%2e",
        ";",
        "?",
        "\\",
        "~",
        "admin",
        "x.y.z",
    ];
    let r = Router::new(&[
        route("root", &["app.example.com"], "/"),
        route("admin", &["app.example.com"], "/admin"),
        route("dots", &["app.example.com"], "/v1.2"),
        route("php", &["app.example.com"], "/legacy/index.php"),
    ]);
    let public: Vec<String> = ["/_next", "/static/", "/a.php", "/é"]
        .iter()
        .map(|p| p.to_string())
        .collect();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((seed >> 33) as usize) % n
    };
    for _ in 0..20_000 {
        let mut path = String::new();
        for _ in 0..next(9) {
            path.push_str(PIECES[next(PIECES.len())]);
        }
        for keep in 0..=path.len() + 2 {
            let _ = framework_readings(&path, keep);
        }
        let _ = r.lookup("app.example.com", &path);
        if let Ok(t) = CanonicalTarget::parse(&path) {
            let _ = t.is_public(&public);
        }
    }
}

#[test]
fn a_gatsby_page_data_file_reads_as_its_page() {
    // Review 12 (C12): Gatsby serves the built data of the page
    // `/admin/users` at `/page-data/admin/users/page-data.json`.
    let r = Router::new(&[
        route("root", &["app.example.com"], "/"),
        route("admin", &["app.example.com"], "/admin"),
    ]);
    for path in [
        "/page-data/admin/users/page-data.json",
        "/page-data/admin/page-data.json",
        "/page-data/admin%2Fusers/page-data.json",
    ] {
        assert!(
            matches!(r.lookup("app.example.com", path), Lookup::AmbiguousPath),
            "{path}"
        );
    }
    for path in [
        "/page-data/index/page-data.json",
        "/page-data/docs/page-data.json",
        "/page-data/sq/d/123456.json",
        "/page-data/app-data.json",
        "/prefix/page-data/admin/page-data.json",
    ] {
        assert_eq!(
            name(&r, "app.example.com", path).as_deref(),
            Some("root"),
            "{path}"
        );
    }
    // Below a public `/page-data/`, a page's data is as public as the page.
    let public = vec!["/page-data/".to_string()];
    let t = CanonicalTarget::parse("/page-data/admin/page-data.json").unwrap();
    assert!(!t.is_public(&public));
    let t = CanonicalTarget::parse("/page-data/sq/d/123456.json").unwrap();
    assert!(t.is_public(&public));
}
