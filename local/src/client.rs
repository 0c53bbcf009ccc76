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

/// The hidden token of a decision page, HTML-unescaped.
pub fn form_token(page: &str) -> String {
    let start = page.find("name=\"token\" value=\"").expect("a token field")
        + "name=\"token\" value=\"".len();
    let end = page[start..].find('"').expect("closed") + start;
    page[start..end]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Opens a decision link and presses its button: GET the page, then POST the form of the
/// decision the link names.
pub async fn decide(link: &str) -> Response<String> {
    let page = get(link).await;
    assert_eq!(page.status(), 200, "{}", page.body());
    post_decision(link, &form_token(page.body())).await
}

/// Posts a decision form with `token` to the decision `link` names (its query is dropped), as
/// the page's button does, even when the page is stale.
pub async fn post_decision(link: &str, token: &str) -> Response<String> {
    let action = link.split('?').next().expect("a path");
    let form = format!(
        "token={}",
        percent_encoding::utf8_percent_encode(token, percent_encoding::NON_ALPHANUMERIC)
    );
    post_form(action, &form).await
}
