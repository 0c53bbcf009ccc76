//! The whole local stack: binds the port, resolves the template, opens every service over the
//! data directory, builds the Lambda functions, registers the real state machine and serves.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::config::Credentials;
use aws_types::SdkConfig;
use futures::future::BoxFuture;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::aws::REGION;
use crate::clock::Clock;
use crate::deployment::{self, BucketEncryption, DEFINITION, Deployment, TEMPLATE};
use crate::events::{EventBridge, OnEvent};
use crate::faults::Faults;
use crate::iam::{Iam, KnownPrincipals, Principal};
use crate::kms::Kms;
use crate::lambdas::{FunctionOverrides, Lambdas};
use crate::macie::{Macie, MacieOptions};
use crate::router::{self, Services, Transport};
use crate::s3::Store;
use crate::sfn::definition::substitute::substitute;
use crate::sfn::engine::{Engine, Integrations, Observer};
use crate::sfn::error::StatesError;
use crate::sns::{self, OnPublish, Sns, Topic};
use crate::tls::Tls;
use tokio_rustls::TlsAcceptor;

/// How to run the stack.
#[derive(Clone)]
pub struct StackConfig {
    pub data_dir: PathBuf,
    pub host: IpAddr,
    /// 0 picks a free port.
    pub port: u16,
    /// Multiplies every workflow wait (1.0 is real time).
    pub time_scale: f64,
    /// How the local Macie behaves (start-up delay, size limit, results delay).
    pub macie: MacieOptions,
    /// Point Macie's discovery results at the deployment's results bucket when the account has
    /// no location yet, as the documented set-up step does. Off, runs fail closed until one is
    /// set (for example with the AWS CLI).
    pub configure_discovery_results: bool,
    /// Template parameter values.
    pub parameters: BTreeMap<String, String>,
    pub functions: FunctionOverrides,
    /// Start runs on the template's schedule.
    pub schedule: bool,
    pub observer: Option<Observer>,
    pub on_publish: Option<OnPublish>,
    /// Called with each event put on a bus.
    pub on_event: Option<OnEvent>,
    /// A socket already bound, to serve on instead of binding `host` and `port`: whoever
    /// starts the stack then knows its address before the template is resolved (a parameter
    /// can name the stack's own webhook receiver).
    pub listener: Option<Arc<std::net::TcpListener>>,
    /// Check every request against the template's permissions (on unless turned off).
    pub enforce_iam: bool,
    /// The template to deploy instead of the one compiled in.
    pub template: Option<String>,
}

impl StackConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            time_scale: 1.0,
            macie: MacieOptions::default(),
            configure_discovery_results: true,
            parameters: BTreeMap::new(),
            functions: FunctionOverrides::default(),
            schedule: false,
            observer: None,
            on_publish: None,
            on_event: None,
            listener: None,
            enforce_iam: true,
            template: None,
        }
    }
}

/// Calls from the state machine to the local functions and SNS, each authorized against the
/// state machine's role as Step Functions' integrations are.
struct LocalIntegrations {
    lambdas: Arc<Lambdas>,
    sns: Arc<Sns>,
    events: Arc<EventBridge>,
    store: Arc<Store>,
    iam: Arc<Iam>,
    role: Arc<Principal>,
}

/// Step Functions reaches AWS over TLS.
fn secure() -> crate::iam::evaluate::Context {
    crate::iam::evaluate::transport(true)
}

impl LocalIntegrations {
    fn check(
        &self,
        action: &str,
        resource: &str,
        context: crate::iam::evaluate::Context,
        error: &str,
        service: &str,
        code: &str,
    ) -> Result<(), StatesError> {
        self.iam
            .authorize(&self.role, action, resource, context)
            .map_err(|denied| {
                StatesError::new(
                    error,
                    format!(
                        "{} (Service: {service}, Status Code: 403, Error Code: {code})",
                        denied.message
                    ),
                )
            })
    }
}

impl Integrations for LocalIntegrations {
    fn invoke(
        &self,
        function: String,
        payload: Value,
    ) -> BoxFuture<'static, Result<Value, StatesError>> {
        let arn = crate::aws::lambda_function_arn(&function);
        if let Err(err) = self.check(
            "lambda:InvokeFunction",
            &arn,
            secure(),
            "Lambda.AWSLambdaException",
            "Lambda",
            "AccessDeniedException",
        ) {
            return Box::pin(async move { Err(err) });
        }
        self.lambdas.invoke(&function, payload)
    }

    fn authorize(&self, action: &str, resource: &str) -> Result<(), StatesError> {
        self.check(
            action,
            resource,
            secure(),
            "States.Runtime",
            "AWSStepFunctions",
            "AccessDeniedException",
        )
    }

    fn use_key(&self, key: &str, machine_arn: &str) -> Result<(), StatesError> {
        self.iam
            .authorize_state_machine_key(
                &self.role,
                crate::iam::ENCRYPT_AND_DECRYPT,
                key,
                machine_arn,
                true,
            )
            .map_err(|denied| {
                StatesError::new(
                    "States.Runtime",
                    format!(
                        "{} (Service: AWSKMS, Status Code: 400, Error Code: AccessDeniedException)",
                        denied.message
                    ),
                )
            })
    }

    fn list_objects(
        &self,
        bucket: String,
        prefix: String,
    ) -> BoxFuture<'static, Result<Vec<Value>, StatesError>> {
        let store = Arc::clone(&self.store);
        let mut context = secure();
        context.insert("s3:prefix".into(), vec![prefix.clone()]);
        let allowed = self.check(
            "s3:ListBucket",
            &format!("arn:aws:s3:::{bucket}"),
            context,
            "States.ItemReaderFailed",
            "Amazon S3",
            "AccessDenied",
        );
        Box::pin(async move {
            allowed?;
            let mut items = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = store
                    .list(&bucket, &prefix, after.as_deref(), None, 1000)
                    .map_err(|err| {
                        StatesError::new(
                            "States.ItemReaderFailed",
                            format!("listing s3://{bucket}/{prefix}: {err}"),
                        )
                    })?;
                items.extend(page.objects.iter().map(|meta| {
                    json!({
                        "Etag": format!("\"{}\"", meta.etag),
                        "Key": meta.key,
                        "LastModified": meta.last_modified_ms / 1000,
                        "Size": meta.size,
                        "StorageClass": meta.attributes.storage_class.as_deref().unwrap_or("STANDARD"),
                    })
                }));
                if !page.truncated {
                    return Ok(items);
                }
                after = page.last;
            }
        })
    }

    fn put_events(&self, parameters: Value) -> BoxFuture<'static, Result<Value, StatesError>> {
        let result = self.put_events_now(&parameters);
        Box::pin(async move { result })
    }

    fn publish(&self, parameters: Value) -> BoxFuture<'static, Result<Value, StatesError>> {
        let sns = Arc::clone(&self.sns);
        let topic = parameters["TopicArn"]
            .as_str()
            .or_else(|| parameters["TargetArn"].as_str())
            .unwrap_or("*")
            .to_owned();
        let allowed = self.check(
            "sns:Publish",
            &topic,
            secure(),
            "SNS.AuthorizationErrorException",
            "AmazonSNS",
            "AuthorizationError",
        );
        Box::pin(async move {
            allowed?;
            let request = sns::from_task_parameters(&parameters);
            match sns.publish(request) {
                Ok(id) => Ok(json!({"MessageId": id})),
                Err(err) => {
                    let exception = match err.code {
                        "InvalidParameter" => "InvalidParameterException",
                        "NotFound" => "NotFoundException",
                        "ParameterValueInvalid" => "InvalidParameterValueException",
                        _ => "InternalErrorException",
                    };
                    Err(StatesError::new(format!("SNS.{exception}"), err.message))
                }
            }
        })
    }
}

impl LocalIntegrations {
    /// What the state machine's events:putEvents task answers for `parameters`.
    fn put_events_now(&self, parameters: &Value) -> Result<Value, StatesError> {
        let entries = crate::events::api::entries(parameters).map_err(|err| {
            StatesError::new(format!("EventBridge.{}", err.code), err.message.clone())
        })?;
        let results = self
            .events
            .put_events(&self.role, entries, true)
            .map_err(|err| StatesError::new(format!("EventBridge.{}", err.code), err.message))?;
        Ok(crate::events::api::response(&results))
    }
}

/// A running local stack.
pub struct LocalStack {
    address: SocketAddr,
    endpoint: String,
    tls: Tls,
    iam: Arc<Iam>,
    data_dir: PathBuf,
    deployment: Deployment,
    state_machine_arn: String,
    services: Arc<Services>,
    store: Arc<Store>,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<()>>,
    usage_written: bool,
}

/// SDK settings for clients of the local stack as its local user: its endpoint, a region,
/// the user's credentials, and trust in the stack's certificate authority (`ca_pem`).
pub async fn sdk_config(endpoint: &str, ca_pem: &[u8]) -> SdkConfig {
    sdk_config_as(endpoint, ca_pem, crate::iam::USER_ACCESS_KEY).await
}

/// The same, signed with another access key (a role's, or the read-only user's).
pub async fn sdk_config_as(endpoint: &str, ca_pem: &[u8], access_key: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .http_client(crate::tls::http_client(ca_pem))
        .credentials_provider(Credentials::new(
            access_key.to_owned(),
            crate::s3::SECRET_ACCESS_KEY,
            None,
            None,
            "macie-pipeline-local",
        ))
        .load()
        .await
}

/// Creates the template's keys, or updates their policies, and points its aliases at them, as
/// a deployment does. A key policy KMS would refuse fails the start: one naming Macie's
/// service-linked role fails a deployment that enables Macie (`EnableMacie=yes`), because
/// that role does not exist until Macie is enabled, after the keys are made.
fn deploy_keys(deployment: &Deployment, kms: &Kms, iam: &Iam) -> Result<(), String> {
    let principals = KnownPrincipals {
        iam,
        macie_enabled: deployment.parameters.get("EnableMacie").map(String::as_str) != Some("yes"),
    };
    for key in &deployment.keys {
        kms.deploy_template_key(
            &key.logical_id,
            &key.key_id,
            &key.description,
            &key.policy,
            &principals,
        )?;
    }
    for (alias, key) in &deployment.key_aliases {
        kms.set_alias(alias, key, true)
            .map_err(|err| format!("{alias}: {err}"))?;
    }
    Ok(())
}

impl LocalStack {
    pub async fn start(config: StackConfig) -> Result<Self, String> {
        let listener = match &config.listener {
            Some(bound) => {
                let bound = bound
                    .try_clone()
                    .and_then(|socket| socket.set_nonblocking(true).map(|()| socket))
                    .map_err(|err| format!("the socket given to serve on: {err}"))?;
                TcpListener::from_std(bound)
                    .map_err(|err| format!("the socket given to serve on: {err}"))?
            }
            None => TcpListener::bind((config.host, config.port))
                .await
                .map_err(|err| {
                    format!("cannot listen on {}:{}: {err}", config.host, config.port)
                })?,
        };
        let address = listener.local_addr().map_err(|err| err.to_string())?;
        let endpoint = format!("https://{address}");
        // The approval API is served over plain HTTP too, so a browser opens its links without
        // a certificate warning; no policy conditions on its transport.
        let template = config.template.as_deref().unwrap_or(TEMPLATE);
        let deployment =
            Deployment::resolve(template, &config.parameters, &format!("http://{address}"))?;
        let data_dir = config.data_dir.clone();
        std::fs::create_dir_all(&data_dir)
            .map_err(|err| format!("{}: {err}", data_dir.display()))?;
        let tls = Tls::create(&data_dir.join("tls"))?;
        let kms = Arc::new(Kms::open(data_dir.join("kms"))?);
        let iam = Iam::from_deployment(&deployment, config.enforce_iam)?;
        deploy_keys(&deployment, &kms, &iam)?;
        let iam = Arc::new(iam.with_kms(Arc::clone(&kms)));

        let (store, s3) = crate::s3::service(&data_dir.join("s3"), Arc::clone(&kms))
            .map_err(|err| format!("S3 data: {err}"))?;
        for bucket in deployment.buckets.values() {
            // A bucket named by parameter is someone else's: used as it is, never made or set.
            if deployment.external_buckets.contains(bucket) {
                if !store.bucket_exists(bucket) {
                    warn!(
                        bucket,
                        "the bucket RawBucketName names does not exist; runs fail until it does"
                    );
                }
                continue;
            }
            if !store.bucket_exists(bucket) {
                store
                    .create_bucket(bucket)
                    .map_err(|err| format!("bucket {bucket}: {err}"))?;
            }
            // The template's default encryption, its key resolved as S3 would.
            let encryption = match deployment.bucket_encryption.get(bucket) {
                Some(BucketEncryption {
                    kms_key: Some(key),
                    bucket_key,
                }) => Some(crate::s3::store::DefaultEncryption {
                    kms_key: Some(kms.usable(key).map_err(|err| {
                        format!("bucket {bucket}: its default encryption key {key}: {err}")
                    })?),
                    bucket_key: *bucket_key,
                }),
                _ => None,
            };
            store
                .set_encryption(bucket, encryption)
                .map_err(|err| format!("bucket {bucket}: {err}"))?;
            // As CloudFormation does on an update: versioning once on is suspended, never removed.
            let versioned = deployment.versioned_buckets.contains(bucket);
            let current = store
                .versioning(bucket)
                .map_err(|err| format!("bucket {bucket}: {err}"))?;
            let wanted = match (versioned, current) {
                (true, _) => Some(crate::s3::store::Versioning::Enabled),
                (false, crate::s3::store::Versioning::Enabled) => {
                    Some(crate::s3::store::Versioning::Suspended)
                }
                (false, _) => None,
            };
            if let Some(wanted) = wanted.filter(|w| *w != current) {
                store
                    .set_versioning(bucket, wanted)
                    .map_err(|err| format!("bucket {bucket}: {err}"))?;
            }
            store
                .set_eventbridge(bucket, deployment.eventbridge_buckets.contains(bucket))
                .map_err(|err| format!("bucket {bucket}: {err}"))?;
        }
        let sns = Arc::new(
            Sns::new(
                data_dir.join("outbox"),
                vec![Topic {
                    arn: deployment.topic_arn.clone(),
                    display_name: deployment.topic_display_name.clone(),
                    subscribers: vec![deployment.subscriber.clone()],
                }],
                config.on_publish.clone(),
            )
            .map_err(|err| format!("outbox: {err}"))?,
        );
        let clock = Clock::new(config.time_scale);
        let sqs = Arc::new(crate::sqs::Sqs::open(
            &data_dir.join("sqs"),
            &deployment.queues,
            clock,
        )?);
        let events = Arc::new(EventBridge::open(
            data_dir.join("events"),
            &deployment,
            Arc::clone(&iam),
            clock,
            &tls.ca_pem,
            config.on_event.clone(),
            Arc::clone(&sqs),
        )?);
        // S3 tells EventBridge about objects created in buckets that send it their events.
        let notified = Arc::clone(&events);
        store.notify_created(Box::new(move |created| notified.object_created(created)));
        let macie = Macie::open(
            data_dir.join("macie"),
            Arc::clone(&store),
            clock,
            config.macie.clone(),
            Arc::clone(&iam),
        )
        .map_err(|err| format!("Macie data: {err}"))?;
        for list in deployment.allow_lists.values() {
            macie.deploy_allow_list(&list.id, &list.name, &list.description, &list.criteria)?;
        }
        let (results_bucket, results_key) = &deployment.discovery_results;
        if !store.bucket_exists(results_bucket) {
            // An existing location named by parameter: locally it is made on the spot.
            store
                .create_bucket(results_bucket)
                .map_err(|err| format!("bucket {results_bucket}: {err}"))?;
        }
        if config.configure_discovery_results {
            configure_discovery_results(&macie, results_bucket, results_key)?;
        }
        let aws = sdk_config(&endpoint, tls.ca_pem.as_bytes()).await;
        let faults = Arc::new(Faults::default());
        let lambdas = Arc::new(Lambdas::build(
            &deployment,
            &aws,
            &config.functions,
            Arc::clone(&faults),
        )?);
        let integrations = Arc::new(LocalIntegrations {
            lambdas: Arc::clone(&lambdas),
            sns: Arc::clone(&sns),
            events: Arc::clone(&events),
            store: Arc::clone(&store),
            iam: Arc::clone(&iam),
            role: iam
                .role(crate::iam::STATE_MACHINE)
                .ok_or("the template has no state machine role")?,
        });
        let engine = Engine::open(
            data_dir.join("states"),
            integrations,
            clock,
            config.observer.clone(),
        )
        .map_err(|err| format!("Step Functions data: {err}"))?;
        let definition = substitute(DEFINITION, &deployment.substitutions)?;
        let role = crate::aws::role_arn(&deployment::role_name(crate::iam::STATE_MACHINE));
        let state_machine_arn = engine.register_encrypted(
            &deployment.state_machine_name,
            &definition,
            &role,
            deployment.state_machine_key.as_deref(),
        )?;
        events.attach_engine(engine.clone());
        let resumed = engine.resume();
        if resumed > 0 {
            info!(resumed, "resumed running executions");
        }
        let services = Arc::new(Services {
            s3,
            macie,
            sns,
            engine,
            approval: lambdas.approval(),
            api_routes: deployment.api_routes.clone(),
            faults,
            iam: Arc::clone(&iam),
            store: Arc::clone(&store),
            kms,
            events,
            sqs: Arc::clone(&sqs),
            webhooks: crate::events::webhooks::Webhooks::new(data_dir.join("webhooks")),
        });
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(
            listener,
            Arc::clone(&services),
            tls.acceptor.clone(),
            shutdown.clone(),
        ));
        if let Some(rule) = deployment
            .schedule
            .as_ref()
            .filter(|rule| config.schedule && rule.enabled)
        {
            tokio::spawn(crate::triggers::schedule(
                services.engine.clone(),
                Arc::clone(&iam),
                iam.role(&rule.role)
                    .ok_or_else(|| format!("the schedule rule {} has no role", rule.role))?,
                rule.clone(),
                shutdown.clone(),
            ));
        }
        for pipe in &deployment.pipes {
            tokio::spawn(crate::triggers::run_pipe(
                pipe.clone(),
                Arc::clone(&sqs),
                Arc::clone(&iam),
                services.engine.clone(),
                crate::triggers::pipe_log(&data_dir, &pipe.logical_id),
                shutdown.clone(),
            ));
        }
        Ok(Self {
            address,
            endpoint,
            tls,
            iam,
            data_dir,
            deployment,
            state_machine_arn,
            services,
            store,
            shutdown,
            server: Some(server),
            usage_written: false,
        })
    }

    /// The AWS endpoint, over HTTPS (trust [`Self::ca_path`]).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The same port over plain HTTP: the approval API and the stack's controls. AWS requests
    /// sent here count as insecure transport, which the template's bucket policies deny.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The certificate authority to trust for [`Self::endpoint`].
    pub fn ca_path(&self) -> &Path {
        &self.tls.ca_path
    }

    pub fn ca_pem(&self) -> &str {
        &self.tls.ca_pem
    }

    /// The permissions the stack enforces, and what was used of them.
    pub fn iam(&self) -> &Iam {
        &self.iam
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    pub fn state_machine_arn(&self) -> &str {
        &self.state_machine_arn
    }

    pub fn outbox(&self) -> &Path {
        self.services.sns.outbox()
    }

    pub fn faults(&self) -> &Faults {
        &self.services.faults
    }

    pub fn macie(&self) -> &Macie {
        &self.services.macie
    }

    pub fn engine(&self) -> &Engine {
        &self.services.engine
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// SDK settings for clients of this stack.
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config(&self.endpoint, self.tls.ca_pem.as_bytes()).await
    }

    /// SDK settings for clients of this stack signing with `access_key`.
    pub async fn sdk_config_as(&self, access_key: &str) -> SdkConfig {
        sdk_config_as(&self.endpoint, self.tls.ca_pem.as_bytes(), access_key).await
    }

    /// Writes what each principal used so far to `<data>/iam-usage.json`, and into
    /// `$MACIE_PIPELINE_LOCAL_IAM_USAGE` (a directory) when set, for `iam report`.
    pub fn write_iam_usage(&self) -> Result<(), String> {
        let usage = self.iam.usage();
        usage.write(&self.data_dir.join("iam-usage.json"))?;
        if let Some(dir) = std::env::var_os(IAM_USAGE_DIR) {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir).map_err(|err| format!("{}: {err}", dir.display()))?;
            usage.write(&dir.join(format!("{}.json", uuid::Uuid::new_v4())))?;
        }
        Ok(())
    }

    /// Stops serving and waits for the server to end. Data stays in the data directory, with
    /// the permissions used (see [`Self::write_iam_usage`]).
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        self.record_iam_usage();
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    fn record_iam_usage(&mut self) {
        if std::mem::replace(&mut self.usage_written, true) {
            return;
        }
        if let Err(err) = self.write_iam_usage() {
            warn!(%err, "the IAM usage could not be written");
        }
    }
}

/// A stack dropped without `shutdown` (a test's) still stops serving and records its usage.
impl Drop for LocalStack {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.record_iam_usage();
    }
}

/// A directory every stack of a test run writes its IAM usage into, for one report over all.
pub const IAM_USAGE_DIR: &str = "MACIE_PIPELINE_LOCAL_IAM_USAGE";

/// Serves one connection, over TLS when its first byte opens a TLS handshake.
async fn connection(stream: tokio::net::TcpStream, services: Arc<Services>, acceptor: TlsAcceptor) {
    let mut first = [0u8; 1];
    let tls = matches!(stream.peek(&mut first).await, Ok(1) if first[0] == 0x16);
    let service = service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(Transport { tls });
        router::dispatch(Arc::clone(&services), request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.keep_alive(true);
    if tls {
        let Ok(stream) = acceptor.accept(stream).await else {
            return;
        };
        let _ = builder
            .serve_connection(TokioIo::new(stream), service)
            .await;
    } else {
        let _ = builder
            .serve_connection(TokioIo::new(stream), service)
            .await;
    }
}

async fn serve(
    listener: TcpListener,
    services: Arc<Services>,
    acceptor: TlsAcceptor,
    shutdown: CancellationToken,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let (stream, _) = match accepted {
            Ok(connection) => connection,
            Err(err) => {
                warn!(%err, "accept failed");
                continue;
            }
        };
        connections.spawn(connection(stream, Arc::clone(&services), acceptor.clone()));
        while connections.try_join_next().is_some() {}
    }
    connections.abort_all();
}

/// Sets Macie's discovery results location to the deployment's, only if none is set: like the
/// documented one-line step, it never replaces another team's setting.
fn configure_discovery_results(
    macie: &Macie,
    bucket: &str,
    kms_key_arn: &str,
) -> Result<(), String> {
    let current = macie
        .get_export_configuration()
        .map_err(|err| err.message.clone())?;
    if current.get("configuration").is_some() {
        return Ok(());
    }
    let configuration = json!({"configuration": {"s3Destination": {
        "bucketName": bucket,
        "keyPrefix": macie_pipeline::macie::results::KEY_PREFIX,
        "kmsKeyArn": kms_key_arn,
    }}});
    macie
        .put_export_configuration(&configuration)
        .map_err(|err| err.message.clone())?;
    info!(bucket, "Macie discovery results location set");
    Ok(())
}
