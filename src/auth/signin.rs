//! Routes the sign-in endpoints: `/.auth/login` (the page and its form),
//! `/.auth/login/<connection>` (start) and `/.auth/login/<connection>/callback`.
//! Inside `auth` because `login` and `callback` keep their items `pub(super)`.

use http::request::Parts;
use http::{Method, Response};

use super::form::read_form;
use super::{callback, login, Ctx};
use crate::respond::{Body, GatewayError};

/// `rest` is the path after `/.auth`: `/login` or `/login/...`.
pub(crate) async fn serve(
    ctx: &Ctx<'_>,
    parts: &Parts,
    body: hyper::body::Incoming,
    rest: &str,
    _conn: &crate::peer::ConnInfo,
) -> Result<Response<Body>, GatewayError> {
    let method = &parts.method;
    if rest == "/login" {
        return match *method {
            Method::GET | Method::HEAD => login::page(ctx, parts).await,
            Method::POST => {
                let form = read_form(body).await?;
                login::submit(ctx, parts, form).await
            }
            _ => Err(GatewayError::MethodNotAllowed),
        };
    }
    let Some(tail) = rest.strip_prefix("/login/") else {
        return Err(GatewayError::NotFound);
    };
    match tail.split_once('/') {
        None if *method == Method::GET || *method == Method::HEAD => {
            login::start(ctx, parts, tail).await
        }
        // A kind whose form posts back to itself (`connection::SignIn`).
        None if *method == Method::POST && callback::completes_at_login_post(ctx, tail) => {
            let form = read_form(body).await?;
            callback::finish(ctx, parts, tail, form).await
        }
        Some((name, "callback")) if *method == Method::GET => {
            let query = parts.uri.query().unwrap_or("").as_bytes().to_vec();
            callback::finish(ctx, parts, name, query).await
        }
        Some((name, "callback")) if *method == Method::POST => {
            let form = read_form(body).await?;
            callback::finish(ctx, parts, name, form).await
        }
        Some((_, "callback")) | None => Err(GatewayError::MethodNotAllowed),
        _ => Err(GatewayError::NotFound),
    }
}
