//! Forms and queries of the `/.auth/*` endpoints: a bounded body read and
//! `application/x-www-form-urlencoded` pairs where a repeated key counts as absent.

use http_body_util::BodyExt;

use crate::respond::GatewayError;

/// Largest form body accepted by `/.auth/` endpoints (a form_post callback
/// carries an authorization code and state; an ID token at most; a SAML
/// response or WS-Fed `wresult` up to `saml::MAX_RESPONSE_BYTES` (256 KiB)
/// base64- or form-encoded).
const MAX_FORM_BYTES: usize = 384 * 1024;

pub(crate) async fn read_form(body: hyper::body::Incoming) -> Result<Vec<u8>, GatewayError> {
    let limited = http_body_util::Limited::new(body, MAX_FORM_BYTES);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes().to_vec()),
        Err(_) => Err(GatewayError::BadRequest(
            "The form is too large or was not received completely.",
        )),
    }
}

/// True when the request says its body is a form: one `Content-Type` whose
/// media type is `application/x-www-form-urlencoded` (any case, parameters
/// such as `charset` allowed).
pub(crate) fn is_form(headers: &http::HeaderMap) -> bool {
    let mut all = headers.get_all(http::header::CONTENT_TYPE).iter();
    let (Some(v), None) = (all.next(), all.next()) else {
        return false;
    };
    let media = v.as_bytes().split(|&b| b == b';').next().unwrap_or(b"");
    media
        .trim_ascii()
        .eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
}

/// Parses `application/x-www-form-urlencoded` (query or body) into pairs.
pub(crate) fn form_pairs(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

pub(crate) fn form_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    // A duplicated parameter is ambiguous: treat it as absent.
    let mut found = pairs.iter().filter(|(k, _)| k == key);
    let first = found.next()?;
    if found.next().is_some() {
        return None;
    }
    Some(first.1.as_str())
}
