//! Sending an event to an API destination as EventBridge does: the destination's method and
//! endpoint, the whole event as a JSON body, the connection's authorization and headers, a
//! 5-second timeout, and retries of the answers EventBridge retries (401, 407, 409, 429, 5xx,
//! and no answer at all) with exponential backoff in workflow time. EventBridge keeps trying for
//! up to 24 hours; locally a delivery gives up after [`LOCAL_RETRIES`] retries, recorded.
//! HTTPS endpoints are trusted through the stack's own certificate authority: everything the
//! local stack reaches is on loopback.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio_rustls::TlsConnector;

use crate::clock::Clock;
use crate::deployment::{ConnectionAuthorization, LocalApiDestination, LocalConnection};

/// Retries after the first attempt, at most (EventBridge's default is 185 over 24 hours).
pub const LOCAL_RETRIES: u32 = 4;

/// API destinations wait this long for an answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// One HTTP request to an API destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// The request EventBridge makes for `event` to `destination` through `connection`.
pub fn request(
    destination: &LocalApiDestination,
    connection: &LocalConnection,
    event: &Value,
) -> Request {
    let mut headers = vec![
        (
            "content-type".to_owned(),
            "application/json; charset=utf-8".to_owned(),
        ),
        (
            "user-agent".to_owned(),
            "Amazon/EventBridge/ApiDestinations".to_owned(),
        ),
    ];
    headers.extend(
        connection
            .headers
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.clone())),
    );
    match &connection.authorization {
        ConnectionAuthorization::ApiKey { name, value } => {
            headers.push((name.to_ascii_lowercase(), value.clone()));
        }
        ConnectionAuthorization::Basic { username, password } => headers.push((
            "authorization".to_owned(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            ),
        )),
    }
    Request {
        method: destination.method.to_ascii_uppercase(),
        url: destination.endpoint.clone(),
        headers,
        body: event.to_string(),
    }
}

/// Whether EventBridge tries a delivery again after this answer.
pub fn retried(status: u16) -> bool {
    matches!(status, 401 | 407 | 409 | 429) || status >= 500
}

/// Sends requests over HTTP or HTTPS (trusting the stack's authority).
#[derive(Clone)]
pub struct Delivery {
    tls: TlsConnector,
    clock: Clock,
}

impl Delivery {
    pub fn new(ca_pem: &str, clock: Clock) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        for certificate in rustls_pemfile_certificates(ca_pem)? {
            roots
                .add(certificate)
                .map_err(|err| format!("the stack's certificate authority: {err}"))?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("TLS: {err}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Self {
            tls: TlsConnector::from(Arc::new(config)),
            clock,
        })
    }

    /// Sends `request` up to `attempts` times, waiting 1, 2, 4, ... seconds of workflow time
    /// between attempts; `each` is told every attempt's answer (a status, or why none came).
    pub async fn send_with_retries(
        &self,
        request: &Request,
        attempts: u32,
        mut each: impl FnMut(u32, Result<u16, &str>),
    ) {
        for attempt in 1..=attempts.max(1) {
            match self.send(request).await {
                Ok(status) => {
                    each(attempt, Ok(status));
                    if !retried(status) {
                        return;
                    }
                }
                Err(err) => each(attempt, Err(&err)),
            }
            if attempt < attempts {
                self.clock
                    .sleep(f64::from(1u32 << (attempt - 1).min(10)))
                    .await;
            }
        }
    }

    /// One attempt: the answer's status.
    pub async fn send(&self, request: &Request) -> Result<u16, String> {
        tokio::time::timeout(TIMEOUT, self.exchange(request))
            .await
            .map_err(|_| format!("no answer within {} s", TIMEOUT.as_secs()))?
    }

    async fn exchange(&self, request: &Request) -> Result<u16, String> {
        let uri: http::Uri = request
            .url
            .parse()
            .map_err(|err| format!("{}: {err}", request.url))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("{}: not an HTTP or HTTPS URL", request.url)),
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("{}: no host", request.url))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let stream = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|err| format!("connecting to {host}:{port}: {err}"))?;
        let mut builder = http::Request::builder()
            .method(request.method.as_str())
            .uri(
                uri.path_and_query()
                    .map_or("/", |path| path.as_str())
                    .to_owned(),
            )
            .header(
                http::header::HOST,
                uri.authority().map_or(host.clone(), ToString::to_string),
            );
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let outgoing = builder
            .body(Full::new(Bytes::from(request.body.clone())))
            .map_err(|err| err.to_string())?;
        if https {
            let name =
                ServerName::try_from(host.clone()).map_err(|err| format!("{host}: {err}"))?;
            let stream = self
                .tls
                .connect(name, stream)
                .await
                .map_err(|err| format!("TLS with {host}:{port}: {err}"))?;
            exchange_on(TokioIo::new(stream), outgoing).await
        } else {
            exchange_on(TokioIo::new(stream), outgoing).await
        }
    }
}

async fn exchange_on<I>(io: I, request: http::Request<Full<Bytes>>) -> Result<u16, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|err| format!("HTTP handshake: {err}"))?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|err| format!("HTTP request: {err}"))?;
    let status = response.status().as_u16();
    // The body is read and dropped: EventBridge keeps only the status.
    let _ = response.into_body().collect().await;
    Ok(status)
}

/// The certificates of a PEM bundle.
fn rustls_pemfile_certificates(
    pem: &str,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("the stack's certificate authority: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn destination() -> LocalApiDestination {
        LocalApiDestination {
            arn: "arn:aws:events:us-east-1:000000000000:api-destination/tickets/1".into(),
            endpoint: "https://127.0.0.1:4566/_local/webhooks/tickets".into(),
            method: "post".into(),
            connection: "arn:aws:events:us-east-1:000000000000:connection/tickets/1".into(),
        }
    }

    #[test]
    fn the_connection_authorizes_each_request() {
        let api_key = LocalConnection {
            arn: destination().connection,
            authorization: ConnectionAuthorization::ApiKey {
                name: "X-Api-Key".into(),
                value: "s3cret".into(),
            },
            headers: vec![("X-Team".into(), "data".into())],
        };
        let event = json!({"id": "e-1", "detail": {"version": "1"}});
        let sent = request(&destination(), &api_key, &event);
        assert_eq!(sent.method, "POST");
        assert_eq!(sent.body, event.to_string());
        assert!(
            sent.headers
                .contains(&("x-api-key".into(), "s3cret".into()))
        );
        assert!(sent.headers.contains(&("x-team".into(), "data".into())));
        let basic = LocalConnection {
            authorization: ConnectionAuthorization::Basic {
                username: "gate".into(),
                password: "pw".into(),
            },
            ..api_key
        };
        let sent = request(&destination(), &basic, &event);
        assert!(
            sent.headers
                .contains(&("authorization".into(), "Basic Z2F0ZTpwdw==".into()))
        );
    }

    #[test]
    fn only_the_answers_eventbridge_retries_are_retried() {
        for status in [401, 407, 409, 429, 500, 503] {
            assert!(retried(status), "{status}");
        }
        for status in [200, 204, 301, 400, 403, 404] {
            assert!(!retried(status), "{status}");
        }
    }
}
