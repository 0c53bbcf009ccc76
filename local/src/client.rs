//! A minimal HTTP client: the demo and the tests use the approval pages as a browser would
//! (open the link, press the button), and the CLI talks to a running stack's controls.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// Sends one request and returns the response with its whole body.
pub async fn send(request: Request<Full<Bytes>>) -> Response<String> {
    let authority = request
        .uri()
        .authority()
        .expect("an absolute URL")
        .to_string();
    let stream = tokio::net::TcpStream::connect(&authority)
        .await
        .expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let mut request = request;
    request
        .headers_mut()
        .insert(http::header::HOST, authority.parse().expect("host"));
    let response = sender.send_request(request).await.expect("response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Response::from_parts(parts, String::from_utf8_lossy(&body).into_owned())
}

/// GET a URL.
pub async fn get(url: &str) -> Response<String> {
    send(
        Request::get(url)
            .body(Full::new(Bytes::new()))
            .expect("request"),
    )
    .await
}

/// POST JSON to a URL.
pub async fn post_json(url: &str, body: &str) -> Response<String> {
    send(
        Request::post(url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("request"),
    )
    .await
}

/// DELETE a URL.
pub async fn delete(url: &str) -> Response<String> {
    send(
        Request::delete(url)
            .body(Full::new(Bytes::new()))
            .expect("request"),
    )
    .await
}

/// POST a form to a URL.
pub async fn post_form(url: &str, form: &str) -> Response<String> {
    send(
        Request::post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form.to_owned())))
            .expect("request"),
    )
    .await
}

/// The hidden token of a review page, HTML-unescaped.
pub fn form_token(page: &str) -> String {
    find_form_token(page).expect("a token field")
}

/// The hidden token of a review page, if it has a form (a page of a review whose release has
/// finished has none).
pub fn find_form_token(page: &str) -> Option<String> {
    let start = page.find("name=\"token\" value=\"")? + "name=\"token\" value=\"".len();
    let end = page[start..].find('"')? + start;
    Some(
        page[start..end]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&#39;", "'")
            .replace("&amp;", "&"),
    )
}

/// The reviewer name the local tools decide as.
pub const REVIEWER: &str = "local reviewer";

/// Opens a bulk link (`/allow` or `/deny`) and records its choice for every held object: GET the
/// page, then POST its form as a reviewer who leaves the preselected bulk choice as it is.
pub async fn decide(link: &str) -> Response<String> {
    let page = get(link).await;
    assert_eq!(page.status(), 200, "{}", page.body());
    post_decision(link, &form_token(page.body())).await
}

/// Posts the review form with `token` to the path of `link` (its query is dropped), as the page
/// does, even when the page is stale: a reviewer name, and for a bulk link its choice for every
/// undecided object (`/allow` releases, `/deny` deletes, `/review` leaves them undecided).
pub async fn post_decision(link: &str, token: &str) -> Response<String> {
    let action = link.split('?').next().expect("a path");
    let remaining = if action.ends_with("/allow") {
        "release"
    } else if action.ends_with("/deny") {
        "delete"
    } else {
        "keep"
    };
    post_review(action, token, REVIEWER, &[], remaining).await
}

/// Posts a form of the false-positives page to `action`: the token, the reviewer and `fields`.
pub async fn post_false_positive(
    action: &str,
    token: &str,
    reviewer: &str,
    fields: &[(&str, &str)],
) -> Response<String> {
    let body = {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", token);
        form.append_pair("reviewer", reviewer);
        for (name, value) in fields {
            form.append_pair(name, value);
        }
        form.finish()
    };
    post_form(action, &body).await
}

/// Posts the review form to `action`: `choices` as (SHA-256 of the key, choice), and the bulk
/// choice for the rest.
pub async fn post_review(
    action: &str,
    token: &str,
    reviewer: &str,
    choices: &[(String, &str)],
    remaining: &str,
) -> Response<String> {
    // Built before the await: the serializer is not Send.
    let body = {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", token);
        form.append_pair("reviewer", reviewer);
        for (hash, choice) in choices {
            form.append_pair(&format!("object.{hash}"), choice);
        }
        form.append_pair("remaining", remaining);
        form.finish()
    };
    post_form(action, &body).await
}
