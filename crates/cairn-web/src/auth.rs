//! Who may talk to the server, and which requests are actions they meant.
//!
//! * The access token (`CAIRN_SERVE_TOKEN` or 32 random bytes) is accepted
//!   as `Authorization: Bearer`, or once as `?token=`, which starts a
//!   session: a cookie (`HttpOnly`, `SameSite=Strict`) and a redirect to
//!   the same URL without the token, so it leaves the address bar and the
//!   history. Tokens are compared in constant time.
//! * Sessions are stateless: the cookie is a random nonce and its keyed
//!   BLAKE3 MAC under a key that lives only in this process, so nothing is
//!   stored per session and a restart ends every session.
//! * Every POST is an action and must carry the session's CSRF token (a
//!   second MAC of the nonce) as the form field `csrf`, and must not come
//!   from another site (`Sec-Fetch-Site`). A bearer request carries no
//!   ambient credential a foreign page could borrow, so it needs none.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq;

use crate::error::HttpError;
use crate::params::Params;
use crate::state::App;

const COOKIE: &str = "cairn_session";
/// Form bodies larger than this are refused before parsing.
const MAX_FORM: usize = 64 << 10;

/// The server's secrets.
pub struct Auth {
    token: String,
    key: [u8; 32],
}

/// What a handler knows about the caller: the CSRF token its forms carry
/// (empty for bearer requests, which need none).
#[derive(Clone, Debug, Default)]
pub struct Session {
    /// Put in every form as `csrf`.
    pub csrf: String,
}

/// The parsed body of a POST, checked for CSRF by the middleware.
#[derive(Clone, Debug)]
pub struct Form(pub std::sync::Arc<Params>);

impl Auth {
    /// With this access token, or a random one when `None`.
    pub fn new(token: Option<String>) -> std::io::Result<Auth> {
        let mut key = [0u8; 32];
        cairn_repo::format::crypto::fill_random(&mut key)?;
        let token = match token {
            Some(t) => t,
            None => {
                let mut t = [0u8; 32];
                cairn_repo::format::crypto::fill_random(&mut t)?;
                hex::encode(t)
            }
        };
        Ok(Auth { token, key })
    }

    /// The access token (printed in the start URL).
    pub fn token(&self) -> &str {
        &self.token
    }

    fn token_ok(&self, given: &[u8]) -> bool {
        bool::from(given.ct_eq(self.token.as_bytes()))
    }

    fn mac(&self, purpose: &str, nonce: &str) -> String {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(purpose.as_bytes());
        h.update(b"\0");
        h.update(nonce.as_bytes());
        h.finalize().to_hex().to_string()
    }

    fn new_cookie(&self) -> std::io::Result<String> {
        let mut n = [0u8; 16];
        cairn_repo::format::crypto::fill_random(&mut n)?;
        let nonce = hex::encode(n);
        Ok(format!("{nonce}.{}", self.mac("session", &nonce)))
    }

    /// The session nonce of a cookie value, if the cookie is ours.
    fn session_nonce<'a>(&self, value: &'a str) -> Option<&'a str> {
        let (nonce, mac) = value.split_once('.')?;
        let ok: bool = mac
            .as_bytes()
            .ct_eq(self.mac("session", nonce).as_bytes())
            .into();
        ok.then_some(nonce)
    }

    fn csrf(&self, nonce: &str) -> String {
        self.mac("csrf", nonce)
    }
}

fn bearer(req: &Request) -> Option<&[u8]> {
    let v = req.headers().get(header::AUTHORIZATION)?.as_bytes();
    v.strip_prefix(b"Bearer ")
}

fn cookie(req: &Request) -> Option<&str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// The middleware: authenticate, then check POSTs for CSRF.
pub async fn guard(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let auth = &app.auth;
    let session = if let Some(b) = bearer(&req) {
        if !auth.token_ok(b) {
            return unauthorized("wrong token");
        }
        Session::default()
    } else if let Some(nonce) = cookie(&req).and_then(|c| auth.session_nonce(c)) {
        Session {
            csrf: auth.csrf(nonce),
        }
    } else {
        return token_in_query(auth, &req)
            .unwrap_or_else(|| unauthorized("open the URL that `cairn serve` printed"));
    };
    if req.method() == Method::POST {
        match check_post(req, &session).await {
            Ok(checked) => req = checked,
            Err(e) => return e.into_response(),
        }
    }
    req.extensions_mut().insert(session);
    next.run(req).await
}

/// A GET with the right `?token=`: start a session and send the browser to
/// the same URL without the token.
fn token_in_query(auth: &Auth, req: &Request) -> Option<Response> {
    let query = req.uri().query()?;
    let params = Params::parse(query.as_bytes());
    let given = params.bytes("token")?;
    if req.method() != Method::GET || !auth.token_ok(given) {
        return Some(unauthorized("wrong token"));
    }
    let rest: Vec<&str> = query
        .split('&')
        .filter(|p| !p.starts_with("token="))
        .collect();
    // Only a path of this server: `//host` would leave it.
    let path = req.uri().path();
    let mut to = if path.starts_with("//") { "/" } else { path }.to_string();
    if !rest.is_empty() {
        to = format!("{to}?{}", rest.join("&"));
    }
    let cookie = auth.new_cookie().ok()?;
    let mut resp = Redirect::to(&to).into_response();
    let value = format!("{COOKIE}={cookie}; HttpOnly; SameSite=Strict; Path=/");
    resp.headers_mut()
        .insert(header::SET_COOKIE, HeaderValue::from_str(&value).ok()?);
    Some(resp)
}

/// Read a POST's form, require its CSRF token (for sessions) and a
/// same-origin request, and hand the parsed form on.
async fn check_post(req: Request, session: &Session) -> Result<Request, HttpError> {
    let cross_site = req
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site");
    if cross_site {
        return Err(HttpError::forbidden("cross-site request refused"));
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM)
        .await
        .map_err(|_| HttpError::bad_request("form too large"))?;
    let form = Params::parse(&bytes);
    if !session.csrf.is_empty() {
        let given = form.bytes("csrf").unwrap_or_default();
        if !bool::from(given.ct_eq(session.csrf.as_bytes())) {
            return Err(HttpError::forbidden(
                "missing or wrong CSRF token: reload the page and try again",
            ));
        }
    }
    let mut req = Request::from_parts(parts, Body::empty());
    req.extensions_mut().insert(Form(std::sync::Arc::new(form)));
    Ok(req)
}

fn unauthorized(why: &str) -> Response {
    let mut resp = HttpError {
        status: StatusCode::UNAUTHORIZED,
        message: format!("not signed in: {why}"),
    }
    .into_response();
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

/// Headers on every response: a Content-Security-Policy that allows only
/// this origin's styles, scripts and fetches (nothing inline, no frames),
/// no referrer (URLs name snapshots and paths), no framing, no sniffing.
pub async fn headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let set = [
        (
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("cache-control", "no-store"),
    ];
    for (k, v) in set {
        h.insert(k, HeaderValue::from_static(v));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_csrf_are_bound_to_this_process() {
        let a = Auth::new(Some("t0k".into())).unwrap();
        assert!(a.token_ok(b"t0k") && !a.token_ok(b"t0") && !a.token_ok(b""));
        let c = a.new_cookie().unwrap();
        let nonce = a.session_nonce(&c).expect("own cookie accepted");
        assert_ne!(a.csrf(nonce), a.mac("session", nonce));
        let other = Auth::new(Some("t0k".into())).unwrap();
        assert!(other.session_nonce(&c).is_none(), "another key refuses it");
        assert!(a.session_nonce("abc.def").is_none());
        assert!(a.session_nonce("nodot").is_none());
    }

    #[test]
    fn generated_tokens_are_long_and_distinct() {
        let (a, b) = (Auth::new(None).unwrap(), Auth::new(None).unwrap());
        assert_eq!(a.token().len(), 64);
        assert_ne!(a.token(), b.token());
    }
}
