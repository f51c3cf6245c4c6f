//! The Kubernetes API, as the plugin uses it: kubeconfig resolution like kubectl's, raw JSON reads
//! (objects stay `serde_json::Value` so the core sees them exactly as stored), the pod proxy, and
//! errors a user can act on.

use std::time::Duration;

use http::{Request, StatusCode};
use kube::client::Body;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};
use serde_json::Value;

use crate::cli::ClusterArgs;
use crate::error::Error;

/// What a request needs from RBAC, named in a forbidden error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Access {
    /// `get`, `list`…
    pub(crate) verb: &'static str,
    /// `pods`, `pods/proxy`, `secrets`…
    pub(crate) resource: &'static str,
    /// The API group (`""` for core).
    pub(crate) group: &'static str,
    /// The namespace, for namespaced requests.
    pub(crate) namespace: Option<String>,
}

impl Access {
    pub(crate) fn describe(&self) -> String {
        let group = if self.group.is_empty() {
            String::new()
        } else {
            format!(" (API group {})", self.group)
        };
        match &self.namespace {
            Some(ns) => format!("{} {}{group} in namespace {ns}", self.verb, self.resource),
            None => format!("{} {}{group} cluster-wide", self.verb, self.resource),
        }
    }
}

/// The namespaces a command looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// `-A`.
    All,
    /// `-n NAME`, or the context's namespace.
    Namespace(String),
}

impl Scope {
    pub(crate) fn namespace(&self) -> Option<&str> {
        match self {
            Scope::All => None,
            Scope::Namespace(ns) => Some(ns),
        }
    }
}

/// A kind of object the plugin lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resource {
    /// `/api/v1` or `/apis/<group>/<version>`.
    pub(crate) prefix: &'static str,
    /// API group for RBAC messages.
    pub(crate) group: &'static str,
    /// Plural name.
    pub(crate) plural: &'static str,
    /// Whether it lives in namespaces.
    pub(crate) namespaced: bool,
    /// The `kind` of its objects.
    pub(crate) kind: &'static str,
}

impl Resource {
    const fn new(
        prefix: &'static str,
        group: &'static str,
        plural: &'static str,
        kind: &'static str,
        namespaced: bool,
    ) -> Self {
        Self {
            prefix,
            group,
            plural,
            namespaced,
            kind,
        }
    }
}

/// Items asked for per list request: kubectl's default `--chunk-size`.
pub(crate) const PAGE_SIZE: usize = 500;

const CORE: &str = "/api/v1";
const APPS: &str = "/apis/apps/v1";
const BATCH: &str = "/apis/batch/v1";
const ADMISSION: &str = "/apis/admissionregistration.k8s.io/v1";

pub(crate) const PODS: Resource = Resource::new(CORE, "", "pods", "Pod", true);
pub(crate) const NAMESPACES: Resource = Resource::new(CORE, "", "namespaces", "Namespace", false);
pub(crate) const SERVICES: Resource = Resource::new(CORE, "", "services", "Service", true);
pub(crate) const SECRETS: Resource = Resource::new(CORE, "", "secrets", "Secret", true);
pub(crate) const ENDPOINT_SLICES: Resource = Resource::new(
    "/apis/discovery.k8s.io/v1",
    "discovery.k8s.io",
    "endpointslices",
    "EndpointSlice",
    true,
);
pub(crate) const MUTATING_WEBHOOKS: Resource = Resource::new(
    ADMISSION,
    "admissionregistration.k8s.io",
    "mutatingwebhookconfigurations",
    "MutatingWebhookConfiguration",
    false,
);
pub(crate) const VALIDATING_WEBHOOKS: Resource = Resource::new(
    ADMISSION,
    "admissionregistration.k8s.io",
    "validatingwebhookconfigurations",
    "ValidatingWebhookConfiguration",
    false,
);

/// The workload kinds `validate` reads in the cluster.
pub(crate) const WORKLOADS: [Resource; 5] = [
    Resource::new(APPS, "apps", "deployments", "Deployment", true),
    Resource::new(APPS, "apps", "statefulsets", "StatefulSet", true),
    Resource::new(APPS, "apps", "daemonsets", "DaemonSet", true),
    Resource::new(BATCH, "batch", "cronjobs", "CronJob", true),
    Resource::new(BATCH, "batch", "jobs", "Job", true),
];

/// A response relayed by the pod proxy.
#[derive(Debug)]
pub(crate) struct Proxied {
    pub(crate) status: StatusCode,
    pub(crate) body: Vec<u8>,
}

/// A connected client.
#[derive(Clone)]
pub(crate) struct Cluster {
    /// One client, without an idle read timeout: each request is bounded as a whole instead
    /// ([`Cluster::timed`], [`Cluster::proxy`]: the pod proxy's `/drain` sends nothing until the
    /// drain ends, which may be minutes). One, because each client built runs a kubeconfig's
    /// `exec` credential plugin (`aws eks get-token`, kubelogin) again.
    client: Client,
    default_namespace: String,
    server: String,
    /// How long a probe's `/status` through the pod proxy may take ([`ClusterArgs::probe_timeout`]).
    probe_timeout: Option<Duration>,
    /// `--request-timeout`, for the message when a request outlasts it.
    request_timeout: Option<Duration>,
}

impl Cluster {
    /// Resolves the configuration like kubectl: `--kubeconfig`, else `$KUBECONFIG` (merged),
    /// else `~/.kube/config`, else the in-cluster service account; `--context` picks the context.
    pub(crate) async fn connect(args: &ClusterArgs) -> Result<Self, Error> {
        let mut config = load_config(args).await?;
        let timeout = args.request_timeout().0;
        // Each request is bounded whole by `timed`: no idle read or write timeout beside it.
        config.read_timeout = None;
        config.write_timeout = None;
        config.connect_timeout = Some(
            timeout
                .unwrap_or(Duration::from_secs(30))
                .min(Duration::from_secs(10)),
        );
        // An interactive command fails fast and says why; kube's retries of 503s would turn a
        // pod proxy's "connection refused" into a long wait.
        config.default_retry = false;
        let server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_owned();
        let default_namespace = config.default_namespace.clone();
        let client = Client::try_from(config).map_err(|source| Error::Client {
            server: server.clone(),
            source,
        })?;
        Ok(Self {
            client,
            default_namespace,
            server,
            probe_timeout: args.probe_timeout(),
            request_timeout: timeout,
        })
    }

    /// How long a probe's `/status` through the pod proxy may take.
    pub(crate) fn probe_timeout(&self) -> Option<Duration> {
        self.probe_timeout
    }

    /// The namespaces selected by `-n`/`-A`.
    pub(crate) fn scope(&self, args: &ClusterArgs) -> Scope {
        if args.all_namespaces {
            Scope::All
        } else {
            Scope::Namespace(self.namespace(args))
        }
    }

    /// The namespace of `-n`, else the context's (also for `-n ""`, as kubectl reads it).
    pub(crate) fn namespace(&self, args: &ClusterArgs) -> String {
        args.namespace
            .clone()
            .filter(|namespace| !namespace.is_empty())
            .unwrap_or_else(|| self.default_namespace.clone())
    }

    /// The API server's URL.
    pub(crate) fn server(&self) -> &str {
        &self.server
    }

    /// GETs `path` as JSON.
    pub(crate) async fn get(&self, path: &str, access: Access) -> Result<Value, Error> {
        let request = Request::get(path)
            .body(Vec::new())
            .map_err(|e| Error::Request(e.to_string()))?;
        let text = self
            .timed(path, self.client.request_text(request))
            .await?
            .map_err(|e| self.classify(e, &access, path))?;
        serde_json::from_str(&text).map_err(|source| Error::Decode {
            what: path.to_owned(),
            source,
        })
    }

    /// GETs `path`, with `None` for a 404.
    pub(crate) async fn get_optional(
        &self,
        path: &str,
        access: Access,
    ) -> Result<Option<Value>, Error> {
        match self.get(path, access).await {
            Ok(value) => Ok(Some(value)),
            Err(Error::Api { code: 404, .. }) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// Lists `resource` in `scope` (or cluster-wide for cluster-scoped kinds), with a label
    /// selector, returning the items.
    ///
    /// Read in pages of [`PAGE_SIZE`] as kubectl does (`--chunk-size`), so that a cluster of
    /// thousands of pods is not one answer the API server must build in memory at once. A
    /// continue token that expired between pages (410) restarts the list as one unpaged read,
    /// as client-go's pager does: the pages already read may no longer be consistent with it.
    pub(crate) async fn list(
        &self,
        resource: Resource,
        scope: &Scope,
        selector: Option<&str>,
    ) -> Result<Vec<Value>, Error> {
        let namespace = scope.namespace().filter(|_| resource.namespaced);
        let mut path = match namespace {
            Some(ns) => format!(
                "{}/namespaces/{}/{}",
                resource.prefix,
                encode(ns),
                resource.plural
            ),
            None => format!("{}/{}", resource.prefix, resource.plural),
        };
        if let Some(selector) = selector.filter(|s| !s.is_empty()) {
            path.push_str("?labelSelector=");
            path.push_str(&encode(selector));
        }
        let access = Access {
            verb: "list",
            resource: resource.plural,
            group: resource.group,
            namespace: namespace.map(str::to_owned),
        };
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page_path = match &next {
                None => format!("{path}{separator}limit={PAGE_SIZE}"),
                Some(token) => format!(
                    "{path}{separator}limit={PAGE_SIZE}&continue={}",
                    encode(token)
                ),
            };
            let page = match self.get(&page_path, access.clone()).await {
                Err(Error::Api { code: 410, .. }) if next.is_some() => {
                    let whole = self.get(&path, access).await?;
                    return Ok(list_items(whole, resource, &path)?.0);
                }
                other => other?,
            };
            let (page_items, token) = list_items(page, resource, &path)?;
            items.extend(page_items);
            match token {
                Some(token) => next = Some(token),
                None => return Ok(items),
            }
        }
    }

    /// GETs one object, `None` when it does not exist.
    pub(crate) async fn get_object(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, Error> {
        let path = match namespace.filter(|_| resource.namespaced) {
            Some(ns) => format!(
                "{}/namespaces/{}/{}/{}",
                resource.prefix,
                encode(ns),
                resource.plural,
                encode(name)
            ),
            None => format!("{}/{}/{}", resource.prefix, resource.plural, encode(name)),
        };
        let access = Access {
            verb: "get",
            resource: resource.plural,
            group: resource.group,
            namespace: namespace.map(str::to_owned),
        };
        self.get_optional(&path, access).await
    }

    /// The Kubernetes version: `/version`'s gitVersion, and major.minor when readable.
    pub(crate) async fn version(&self) -> Result<(String, Option<(u32, u32)>), Error> {
        let info = self
            .timed("/version", self.client.apiserver_version())
            .await?
            .map_err(|e| {
                self.classify(
                    e,
                    &Access {
                        verb: "get",
                        resource: "/version",
                        group: "",
                        namespace: None,
                    },
                    "/version",
                )
            })?;
        let numbers = sidekiq_guard::sidecar::parse_server_version(
            &info.major,
            &info.minor,
            &info.git_version,
        );
        Ok((info.git_version, numbers))
    }

    /// GETs `path` of port `port` of a pod through the API server's pod proxy, returning the
    /// pod's own status and body (a 503 from the probe is an answer, not an error).
    pub(crate) async fn proxy(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
        path: &str,
        timeout: Option<Duration>,
    ) -> Result<Proxied, Error> {
        let uri = format!(
            "/api/v1/namespaces/{}/pods/{}:{port}/proxy{path}",
            encode(namespace),
            encode(pod)
        );
        let request = Request::get(&uri)
            .body(Body::from(Vec::new()))
            .map_err(|e| Error::Request(e.to_string()))?;
        let access = Access {
            verb: "get",
            resource: "pods/proxy",
            group: "",
            namespace: Some(namespace.to_owned()),
        };
        // The limit covers the whole answer, body included: a probe that sends its headers
        // and then stalls is no answer. Under that limit, silence is no failure.
        let exchange = async {
            let response = self
                .client
                .send(request)
                .await
                .map_err(|e| self.classify(e, &access, &uri))?;
            let status = response.status();
            // The API server answered: a body that breaks off is this pod's failure, not the
            // cluster's, and must not end a command that reads many pods.
            let body = response
                .into_body()
                .collect_bytes()
                .await
                .map_err(|e| Error::Probe {
                    pod: format!("{namespace}/{pod}"),
                    message: format!("its answer through the pod proxy broke off: {e}"),
                })?
                .to_vec();
            Ok::<_, Error>((status, body))
        };
        let (status, body) = match timeout {
            Some(limit) => {
                tokio::time::timeout(limit, exchange)
                    .await
                    .map_err(|_| Error::Timeout {
                        what: format!("pod {namespace}/{pod} port {port}{path}"),
                        after: limit,
                    })??
            }
            None => self.timed(&uri, exchange).await??,
        };
        if status == StatusCode::FORBIDDEN && is_api_status(&body) {
            return Err(Error::Forbidden {
                access: access.describe(),
                message: api_message(&body),
            });
        }
        Ok(Proxied { status, body })
    }

    /// `request`, bounded as a whole by `--request-timeout` as kubectl bounds it (none under
    /// `0`): a server that answers slowly fails it as surely as one that sends nothing.
    async fn timed<T>(
        &self,
        path: &str,
        request: impl std::future::Future<Output = T>,
    ) -> Result<T, Error> {
        let Some(after) = self.request_timeout else {
            return Ok(request.await);
        };
        tokio::time::timeout(after, request)
            .await
            .map_err(|_| Error::ApiTimeout {
                what: path.to_owned(),
                server: self.server.clone(),
                after: sidekiq_guard::duration::format_secs(after.as_secs()),
            })
    }

    fn classify(&self, error: kube::Error, access: &Access, path: &str) -> Error {
        match error {
            kube::Error::Api(status) if status.code == 403 => Error::Forbidden {
                access: access.describe(),
                message: status.message,
            },
            kube::Error::Api(status) if status.code == 401 => Error::Unauthorized {
                server: self.server.clone(),
                message: status.message,
            },
            kube::Error::Api(status) => Error::Api {
                what: path.to_owned(),
                code: status.code,
                message: status.message,
            },
            kube::Error::HyperError(_) | kube::Error::Service(_) => Error::Unreachable {
                server: self.server.clone(),
                source: Box::new(error),
            },
            other => Error::Kube {
                what: path.to_owned(),
                source: Box::new(other),
            },
        }
    }
}

async fn load_config(args: &ClusterArgs) -> Result<Config, Error> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    if let Some(path) = &args.kubeconfig {
        let kubeconfig = Kubeconfig::read_from(path)
            .map_err(|source| kubeconfig_error(path.display().to_string(), source))?;
        return Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|source| kubeconfig_error(path.display().to_string(), source));
    }
    match from_env_skipping_missing()? {
        FromEnv::Merged(kubeconfig) => {
            return Config::from_custom_kubeconfig(*kubeconfig, &options)
                .await
                .map_err(|source| kubeconfig_error("$KUBECONFIG".to_owned(), source));
        }
        // As kubectl: no fallback to ~/.kube/config while KUBECONFIG is set, only to the pod's
        // service account.
        FromEnv::NoneExists(listed) => {
            let missing = || -> Box<dyn std::error::Error + Send + Sync> {
                format!("none of the files it lists exists: {listed}").into()
            };
            return match args.context {
                None => Config::incluster().map_err(|_| Error::Kubeconfig {
                    what: "$KUBECONFIG (and no in-cluster service account)".to_owned(),
                    source: missing(),
                }),
                Some(_) => Err(Error::Kubeconfig {
                    what: "$KUBECONFIG".to_owned(),
                    source: missing(),
                }),
            };
        }
        FromEnv::Unset => {}
    }
    match Config::from_kubeconfig(&options).await {
        Ok(config) => Ok(config),
        // No kubeconfig at all: inside a pod, use its service account, as kubectl does.
        Err(kubeconfig) if args.context.is_none() => Config::incluster().map_err(|_| {
            kubeconfig_error(
                "~/.kube/config (and no in-cluster service account)".to_owned(),
                kubeconfig,
            )
        }),
        Err(source) => Err(kubeconfig_error("~/.kube/config".to_owned(), source)),
    }
}

/// What `KUBECONFIG` gives.
enum FromEnv {
    /// It is not set (or empty): the default place applies.
    Unset,
    /// Its files that exist, merged, skipping those that do not as kubectl does (a missing
    /// entry is common when the variable is shared between machines).
    Merged(Box<Kubeconfig>),
    /// It lists no file that exists (the list, as given).
    NoneExists(String),
}

fn from_env_skipping_missing() -> Result<FromEnv, Error> {
    let Some(value) = std::env::var_os("KUBECONFIG").filter(|value| !value.is_empty()) else {
        return Ok(FromEnv::Unset);
    };
    let existing: Vec<_> = std::env::split_paths(&value)
        .filter(|path| !path.as_os_str().is_empty() && path.exists())
        .collect();
    if existing.is_empty() {
        return Ok(FromEnv::NoneExists(value.to_string_lossy().into_owned()));
    }
    existing
        .iter()
        .try_fold(Kubeconfig::default(), |merged, path| {
            Kubeconfig::read_from(path).and_then(|next| merged.merge(next))
        })
        .map(|merged| FromEnv::Merged(Box::new(merged)))
        .map_err(|source| kubeconfig_error("$KUBECONFIG".to_owned(), source))
}

/// A kubeconfig that cannot be used, with kube's reason — but for a YAML error, whose text from
/// the parser quotes the lines around it, and a kubeconfig's lines hold tokens and keys.
fn kubeconfig_error(what: String, source: KubeconfigError) -> Error {
    let source: Box<dyn std::error::Error + Send + Sync> = match source {
        KubeconfigError::Parse(yaml) => format!(
            "failed to parse kubeconfig YAML: {}",
            sidekiq_guard::errors::YamlError::new(&yaml)
        )
        .into(),
        other => Box::new(other),
    };
    Error::Kubeconfig { what, source }
}

fn is_api_status(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .is_ok_and(|v| v.get("kind").and_then(Value::as_str) == Some("Status"))
}

fn api_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default()
}

/// The items of one list answer, with the `kind` and `apiVersion` their list carried (items
/// carry neither, and the core reads `kind`), and the continue token of the next page.
fn list_items(
    list: Value,
    resource: Resource,
    path: &str,
) -> Result<(Vec<Value>, Option<String>), Error> {
    let Value::Object(mut map) = list else {
        return Err(Error::Request(format!("{path}: the answer is not a list")));
    };
    let next = map
        .get("metadata")
        .and_then(|m| m.get("continue"))
        .and_then(Value::as_str)
        .filter(|token| !token.is_empty())
        .map(str::to_owned);
    let api_version = resource
        .prefix
        .trim_start_matches("/apis/")
        .trim_start_matches("/api/");
    let items = match map.remove("items") {
        Some(Value::Array(mut items)) => {
            for object in items.iter_mut().filter_map(Value::as_object_mut) {
                object.insert("kind".to_owned(), Value::String(resource.kind.to_owned()));
                object.insert(
                    "apiVersion".to_owned(),
                    Value::String(api_version.to_owned()),
                );
            }
            items
        }
        Some(Value::Null) | None => Vec::new(),
        Some(_) => return Err(Error::Request(format!("{path}: items is not a list"))),
    };
    Ok((items, next))
}

/// Percent-encodes a path segment or query value.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_reads_like_an_rbac_rule() {
        let access = Access {
            verb: "list",
            resource: "pods",
            group: "",
            namespace: Some("shop".into()),
        };
        assert_eq!(access.describe(), "list pods in namespace shop");
        let access = Access {
            verb: "get",
            resource: "mutatingwebhookconfigurations",
            group: "admissionregistration.k8s.io",
            namespace: None,
        };
        assert_eq!(
            access.describe(),
            "get mutatingwebhookconfigurations (API group admissionregistration.k8s.io) cluster-wide"
        );
    }

    #[test]
    fn selectors_are_encoded() {
        assert_eq!(
            encode("app=worker,tier!=web"),
            "app%3Dworker%2Ctier%21%3Dweb"
        );
        assert_eq!(encode("shop"), "shop");
    }
}
