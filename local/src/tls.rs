//! TLS for the local stack. Its port speaks HTTPS and plain HTTP alike (the first byte of a
//! connection tells them apart), and only a request that came over TLS counts as
//! `aws:SecureTransport`: the template's bucket policies deny S3 requests over plain HTTP, here
//! as in AWS. Each start makes a fresh certificate authority and a certificate for
//! `127.0.0.1` and `localhost` signed by it, and writes the authority to `<data>/tls/ca.pem`
//! for clients to trust (`AWS_CA_BUNDLE` for the AWS CLI).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_smithy_http_client::tls;
use aws_types::sdk_config::SharedHttpClient;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// The stack's certificate authority and its server configuration.
#[derive(Clone)]
pub struct Tls {
    pub ca_pem: String,
    pub ca_path: PathBuf,
    pub acceptor: TlsAcceptor,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

impl Tls {
    /// Makes the authority and the server certificate, and writes `ca.pem` under `dir`.
    pub fn create(dir: &Path) -> Result<Self, String> {
        let failed = |err: rcgen::Error| format!("TLS certificate: {err}");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "macie-pipeline-local CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().map_err(failed)?;
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(failed)?;

        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .map_err(failed)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "macie-pipeline-local");
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().map_err(failed)?;
        let cert = params.signed_by(&key, &ca).map_err(failed)?;

        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|err| format!("TLS: {err}"))?
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone(), CertificateDer::from(ca.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .map_err(|err| format!("TLS: {err}"))?;
        let mut config = config;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];

        std::fs::create_dir_all(dir).map_err(|err| format!("{}: {err}", dir.display()))?;
        let ca_path = dir.join("ca.pem");
        let ca_pem = ca.pem();
        std::fs::write(&ca_path, &ca_pem).map_err(|err| format!("{}: {err}", ca_path.display()))?;
        Ok(Self {
            ca_pem,
            ca_path,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// An SDK HTTP client that trusts this authority (and nothing else).
    pub fn http_client(&self) -> SharedHttpClient {
        http_client(self.ca_pem.as_bytes())
    }
}

/// An SDK HTTP client that trusts the authority in `ca_pem`.
pub fn http_client(ca_pem: &[u8]) -> SharedHttpClient {
    let context = tls::TlsContext::builder()
        .with_trust_store(tls::TrustStore::empty().with_pem_certificate(ca_pem.to_vec()))
        .build()
        .expect("the stack's own CA certificate");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(context)
        .build_https()
}
