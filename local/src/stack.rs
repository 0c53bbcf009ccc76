//! The whole local stack: binds the port, resolves the template, opens every service over the
//! data directory, builds the Lambda functions, registers the real state machine and serves.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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

use crate::clock::{Clock, now_ms, rfc3339_ms};
use crate::deployment::{self, DEFINITION, Deployment, TEMPLATE};
use crate::faults::Faults;
use crate::lambdas::{FunctionOverrides, Lambdas};
use crate::macie::{Macie, MacieOptions};
use crate::router::{self, Services};
use crate::s3::Store;
use crate::sfn::engine::{ACCOUNT, Engine, Integrations, Observer, REGION};
use crate::sfn::machine;
use crate::sfn::paths::StatesError;
use crate::sns::{self, OnPublish, Sns, Topic};

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
        }
    }
}

/// Calls from the state machine to the local functions and SNS.
struct LocalIntegrations {
    lambdas: Arc<Lambdas>,
    sns: Arc<Sns>,
    store: Arc<Store>,
}

impl Integrations for LocalIntegrations {
    fn invoke(
        &self,
        function: String,
        payload: Value,
    ) -> BoxFuture<'static, Result<Value, StatesError>> {
        self.lambdas.invoke(&function, payload)
    }

    fn list_objects(
        &self,
        bucket: String,
        prefix: String,
    ) -> BoxFuture<'static, Result<Vec<Value>, StatesError>> {
        let store = Arc::clone(&self.store);
        Box::pin(async move {
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

    fn publish(&self, parameters: Value) -> BoxFuture<'static, Result<Value, StatesError>> {
        let sns = Arc::clone(&self.sns);
        Box::pin(async move {
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

/// A running local stack.
pub struct LocalStack {
    address: SocketAddr,
    endpoint: String,
    data_dir: PathBuf,
    deployment: Deployment,
    state_machine_arn: String,
    services: Arc<Services>,
    store: Arc<Store>,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

/// SDK settings for clients of the local stack: its endpoint, a region, any credentials.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            "local",
            crate::s3::SECRET_ACCESS_KEY,
            None,
            None,
            "macie-pipeline-local",
        ))
        .load()
        .await
}

impl LocalStack {
    pub async fn start(config: StackConfig) -> Result<Self, String> {
        let listener = TcpListener::bind((config.host, config.port))
            .await
            .map_err(|err| format!("cannot listen on {}:{}: {err}", config.host, config.port))?;
        let address = listener.local_addr().map_err(|err| err.to_string())?;
        let endpoint = format!("http://{address}");
        let deployment = Deployment::resolve(TEMPLATE, &config.parameters, &endpoint)?;
        let data_dir = config.data_dir.clone();
        std::fs::create_dir_all(&data_dir)
            .map_err(|err| format!("{}: {err}", data_dir.display()))?;

        let (store, s3) =
            crate::s3::service(&data_dir.join("s3")).map_err(|err| format!("S3 data: {err}"))?;
        for bucket in deployment.buckets.values() {
            if !store.bucket_exists(bucket) {
                store
                    .create_bucket(bucket)
                    .map_err(|err| format!("bucket {bucket}: {err}"))?;
            }
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
        let macie = Macie::open(
            data_dir.join("macie"),
            Arc::clone(&store),
            clock,
            config.macie.clone(),
        )
        .map_err(|err| format!("Macie data: {err}"))?;
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
        let aws = sdk_config(&endpoint).await;
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
            store: Arc::clone(&store),
        });
        let engine = Engine::open(
            data_dir.join("states"),
            integrations,
            clock,
            config.observer.clone(),
        )
        .map_err(|err| format!("Step Functions data: {err}"))?;
        let definition = machine::substitute(DEFINITION, &deployment.substitutions)?;
        let role = format!(
            "arn:aws:iam::{ACCOUNT}:role/{}-StateMachineRole",
            deployment::STACK
        );
        let state_machine_arn =
            engine.register(&deployment.state_machine_name, &definition, &role)?;
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
            faults,
        });
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(listener, Arc::clone(&services), shutdown.clone()));
        if config.schedule {
            tokio::spawn(schedule(
                services.engine.clone(),
                state_machine_arn.clone(),
                deployment.schedule.clone(),
                shutdown.clone(),
            ));
        }
        Ok(Self {
            address,
            endpoint,
            data_dir,
            deployment,
            state_machine_arn,
            services,
            store,
            shutdown,
            server,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
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
        sdk_config(&self.endpoint).await
    }

    /// Stops serving and waits for the server to end. Data stays in the data directory.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
    }
}

async fn serve(listener: TcpListener, services: Arc<Services>, shutdown: CancellationToken) {
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
        let services = Arc::clone(&services);
        connections.spawn(async move {
            let service =
                service_fn(move |request| router::dispatch(Arc::clone(&services), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
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

/// Starts a run at the template's rate, with the input the EventBridge schedule sends.
async fn schedule(
    engine: Engine,
    machine_arn: String,
    expression: String,
    shutdown: CancellationToken,
) {
    let seconds = match deployment::rate_seconds(&expression) {
        Ok(seconds) => seconds,
        Err(err) => {
            warn!(%err, "the schedule is not running");
            return;
        }
    };
    let clock = engine.clock();
    loop {
        tokio::select! {
            () = clock.sleep(seconds as f64) => {}
            () = shutdown.cancelled() => return,
        }
        let id = uuid::Uuid::new_v4().to_string();
        let event = json!({
            "version": "0", "id": id, "detail-type": "Scheduled Event", "source": "aws.events",
            "account": ACCOUNT, "time": rfc3339_ms(now_ms()), "region": REGION,
            "resources": [format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/{}-ScanSchedule", deployment::STACK)],
            "detail": {},
        });
        match engine.start(&machine_arn, Some(&id), Some(&event.to_string())) {
            Ok((arn, _)) => info!(execution = arn, "scheduled run started"),
            Err(err) => warn!(?err, "scheduled run could not start"),
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
