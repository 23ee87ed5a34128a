//! Phase 2, strip: what the client may not say. First the hop-by-hop
//! headers (before anything else reads the request, so `Connection` can
//! never name a header realmgate injects), an Upgrade request remembered
//! before they go; `/.auth/*` leaves here. Then every identity header
//! (those of every profile and every route's `headers_extra`) and
//! realmgate's own cookies, the session id taken out of them: the app never
//! sees a value the client chose in a header it trusts.

use http::header::{HeaderValue, UPGRADE};
use http::request::Parts;
use http::{HeaderMap, Request, Version};
use hyper::body::Incoming;

use crate::auth::AuthState;
use crate::headers::hop::{connection_tokens, strip_hop_by_hop};
use crate::peer::ConnInfo;
use crate::session::store::SessionId;

/// An Upgrade request's pending connection and the protocol it asked for.
pub type Upgrade = (hyper::upgrade::OnUpgrade, HeaderValue);

/// Removes the hop-by-hop headers; answers the Upgrade to tunnel, if any
/// (hyper keeps the client side of the connection in the request's
/// extensions, so it is taken before the headers go).
pub fn hop_by_hop(req: &mut Request<Incoming>) -> Option<Upgrade> {
    let upgrade = upgrade_request(req).map(|proto| (hyper::upgrade::on(&mut *req), proto));
    strip_hop_by_hop(req.headers_mut());
    upgrade
}

/// Removes every identity header (`headers::identity`) and every route's
/// `headers_extra` names.
pub fn identity_headers(headers: &mut HeaderMap, state: &AuthState) {
    crate::headers::identity::strip(headers, &state.extra_headers);
}

/// [`identity_headers`], then realmgate's cookies: answers the session id
/// of the cookie of the request's scheme (a plain-http `realmgate` cookie,
/// which a network attacker can plant, is ignored on HTTPS).
/// `parts.headers` must already be free of hop-by-hop headers.
pub fn credentials(state: &AuthState, parts: &mut Parts, conn: &ConnInfo) -> Option<SessionId> {
    identity_headers(&mut parts.headers, state);
    let https = crate::peer::is_https(&state.settings.server, parts, conn);
    state.cookies.take_for(&mut parts.headers, https)
}

/// The `Upgrade` value when this is an HTTP/1.1 upgrade request
/// (`Connection: upgrade` + one `Upgrade`). HTTP/2 has no Upgrade.
///
/// Upgrades to HTTP itself (`h2c`, `HTTP/2.0`, ...) are never tunnelled: the
/// tunnel would carry further HTTP requests straight to the app, past the
/// per-request auth check ("h2c smuggling"). Such requests are forwarded as
/// plain requests, their `Upgrade` removed with the other hop-by-hop headers.
pub fn upgrade_request<B>(req: &Request<B>) -> Option<HeaderValue> {
    if req.version() != Version::HTTP_11 {
        return None;
    }
    let mut values = req.headers().get_all(UPGRADE).iter();
    let proto = values.next()?.clone();
    if values.next().is_some() {
        return None;
    }
    let text = proto.to_str().ok()?;
    let speaks_http = text.split(',').any(|p| {
        let p = p.trim().to_ascii_lowercase();
        p.is_empty() || p.starts_with("h2") || p.starts_with("http")
    });
    if speaks_http {
        return None;
    }
    connection_tokens(req.headers())
        .any(|t| t == "upgrade")
        .then_some(proto)
}
