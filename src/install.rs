//! Judging an installation of sidekiq-guard from the objects the API server returns: the webhook
//! configurations, their Service, the serving certificate and the namespaces. `kubectl sidekiq
//! check` fetches the objects and prints these judgements; the judgements themselves live here.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::analysis::{Context, Skip};
use crate::annotations::{self, PodOptIn};
use crate::findings::Code;
use crate::pointer::Pointer as _;
use crate::review::{self, Outcome};
use crate::selector::Selector;

/// Name of both webhook configurations and of the Service, as in `manifests/base`.
pub const DEFAULT_NAME: &str = "sidekiq-guard";
/// The webhook's namespace in `manifests/base`.
pub const DEFAULT_NAMESPACE: &str = "sidekiq-guard";
/// The `kubernetes.io/tls` Secret the webhook serves from.
pub const DEFAULT_TLS_SECRET: &str = "sidekiq-guard-tls";
/// A serving certificate closer than this to expiry is a warning: its renewal is overdue.
///
/// Both issuers renew 30 days before expiry — cert-manager (`renewBefore` in
/// `manifests/cert-manager`) at that moment, the certs CronJob at its first weekly run after it —
/// so a certificate renewed as planned never has fewer than 23 days left, and warning from 30
/// would flag a healthy installation for up to a week every year. Below 21, a run was missed.
pub const EXPIRY_WARNING_DAYS: i64 = 21;

/// The outcome of one check, Linkerd-check style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// ✓
    Pass,
    /// ‼
    Warn,
    /// ×
    Fail,
}

impl Status {
    /// The mark printed before the check.
    pub fn mark(self) -> &'static str {
        match self {
            Status::Pass => "√",
            Status::Warn => "‼",
            Status::Fail => "×",
        }
    }
}

/// One check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked, as a sentence that reads right after ✓.
    pub title: String,
    /// The outcome.
    pub status: Status,
    /// What was found, when it is not a plain pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Check {
    /// A passing check.
    pub fn pass(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            status: Status::Pass,
            detail: None,
            hint: None,
        }
    }

    /// A check with a problem.
    pub fn problem(
        status: Status,
        title: impl Into<String>,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            title: title.into(),
            status,
            detail: Some(detail.into()),
            hint: Some(hint.into()),
        }
    }

    /// A passing check with something worth showing.
    pub fn pass_with(title: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            status: Status::Pass,
            detail: Some(detail.into()),
            hint: None,
        }
    }
}

/// Mutating or validating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookKind {
    /// `MutatingWebhookConfiguration`.
    Mutating,
    /// `ValidatingWebhookConfiguration`.
    Validating,
}

impl WebhookKind {
    /// The object kind.
    pub fn kind(self) -> &'static str {
        match self {
            WebhookKind::Mutating => "MutatingWebhookConfiguration",
            WebhookKind::Validating => "ValidatingWebhookConfiguration",
        }
    }
}

/// The Service a webhook calls, from `clientConfig.service`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The Service port called (`clientConfig.service.port`, 443 when unset, as the API
    /// server defaults it).
    pub port: u16,
}

/// The port a webhook calls when `clientConfig.service.port` is unset.
pub const DEFAULT_SERVICE_PORT: u16 = 443;

impl ServiceRef {
    /// `namespace/name`, with `:port` when it is not the default.
    pub fn display(&self) -> String {
        if self.port == DEFAULT_SERVICE_PORT {
            format!("{}/{}", self.namespace, self.name)
        } else {
            format!("{}/{}:{}", self.namespace, self.name, self.port)
        }
    }
}

/// A namespace the webhooks must never be sent pods of: the one sidekiq-guard is installed in,
/// or `kube-system`.
#[derive(Debug, Clone, Copy)]
pub struct Namespace<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its labels, when they were read: a selector may exclude it by one of them.
    pub labels: Option<&'a Map<String, Value>>,
}

impl<'a> Namespace<'a> {
    /// A namespace known by its name alone.
    pub fn named(name: &'a str) -> Self {
        Self { name, labels: None }
    }

    /// The namespace `name` with the labels of `object`, the Namespace as the API server
    /// returns it.
    pub fn of(name: &'a str, object: &'a Value) -> Self {
        Self {
            name,
            labels: object.at("/metadata/labels").and_then(Value::as_object),
        }
    }
}

/// The namespaces no webhook may be sent the pods of, with what is known of them.
#[derive(Debug, Clone, Copy)]
pub struct Excluded<'a> {
    /// `kube-system`.
    pub system: Namespace<'a>,
    /// The namespace sidekiq-guard is installed in.
    pub own: Namespace<'a>,
}

impl<'a> Excluded<'a> {
    /// `kube-system` and `own`, known by their names alone.
    pub fn named(own: &'a str) -> Self {
        Self {
            system: Namespace::named(crate::policy::SYSTEM_NAMESPACE),
            own: Namespace::named(own),
        }
    }
}

/// The Service sidekiq-guard is served by, read from its webhook configurations: the one their
/// first webhook calls. Its namespace is where sidekiq-guard is installed
/// ([`install_namespace`]) and its name the one the serving certificate must bear.
pub fn install_service<'a>(configs: impl IntoIterator<Item = &'a Value>) -> Option<ServiceRef> {
    configs
        .into_iter()
        .flat_map(|config| name_and_webhooks(config).1)
        .find_map(service_of)
}

/// Where sidekiq-guard is installed: the namespace of its Service ([`install_service`]), also
/// after a kustomize `namespace:` moved it; [`DEFAULT_NAMESPACE`] when no webhook calls one.
pub fn install_namespace(service: Option<&ServiceRef>) -> &str {
    service.map_or(DEFAULT_NAMESPACE, |service| &service.namespace)
}

/// The Services the webhooks call ([`webhook_configuration`]), each with every port called on
/// it: one group per Service, never empty, each read once.
pub fn by_service(mut called: Vec<ServiceRef>) -> Vec<Vec<ServiceRef>> {
    called.sort();
    called.dedup();
    called
        .chunk_by(|a, b| (&a.namespace, &a.name) == (&b.namespace, &b.name))
        .map(<[ServiceRef]>::to_vec)
        .collect()
}

/// What the Service `service` (as read; `None` when it does not exist) says about the ports
/// the webhooks call on it (`called`, one Service's group from [`by_service`]).
pub fn service_checks(called: &[ServiceRef], service: Option<&Value>) -> Vec<Check> {
    match service {
        Some(object) => called
            .iter()
            .map(|port| service_port(port, object))
            .collect(),
        None => called
            .first()
            .map(|service| {
                Check::problem(
                    Status::Fail,
                    service_endpoints_title(service),
                    "the Service does not exist",
                    "kubectl apply -k manifests/base",
                )
            })
            .into_iter()
            .collect(),
    }
}

/// Judges every webhook of a configuration; returns the checks and the Services called.
pub fn webhook_configuration(
    kind: WebhookKind,
    config: &Value,
    excluded: Excluded<'_>,
) -> (Vec<Check>, Vec<ServiceRef>) {
    let (name, webhooks) = name_and_webhooks(config);
    let mut checks = Vec::new();
    let mut services = Vec::new();
    if webhooks.is_empty() {
        checks.push(Check::problem(
            Status::Fail,
            format!("{} {name} has webhooks", kind.kind()),
            "it has none",
            "apply manifests/base again",
        ));
    }
    for webhook in webhooks {
        let webhook_name = webhook
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("(unnamed)");
        let title = |what: &str| format!("{webhook_name}: {what}");
        match service_of(webhook) {
            Some(service) => {
                checks.push(Check::pass_with(
                    title("calls a Service"),
                    service.display(),
                ));
                services.push(service);
            }
            None => checks.push(Check::problem(
                Status::Warn,
                title("calls a Service"),
                "clientConfig has no service (a URL cannot be checked from here)",
                "point clientConfig.service at the sidekiq-guard Service",
            )),
        }
        checks.push(ca_bundle(
            webhook,
            excluded.own.name,
            &title("has a caBundle"),
        ));
        checks.push(failure_policy(kind, webhook, &title("failurePolicy")));
        checks.push(side_effects(webhook, &title("sideEffects")));
        checks.push(timeout(webhook, &title("timeoutSeconds")));
        checks.push(receives_pods(webhook, &title("receives pod creations")));
        checks.push(selects_opted_in(
            webhook,
            &title("only opted-in pods reach it"),
        ));
        checks.push(excludes_namespaces(
            webhook,
            excluded,
            &title("never sees kube-system nor its own namespace"),
        ));
        if kind == WebhookKind::Mutating {
            checks.push(reinvocation(webhook, &title("reinvocationPolicy")));
        }
    }
    services.sort();
    services.dedup();
    (checks, services)
}

fn service_of(webhook: &Value) -> Option<ServiceRef> {
    let service = webhook.at("/clientConfig/service")?;
    Some(ServiceRef {
        namespace: service.get("namespace")?.as_str()?.to_owned(),
        name: service.get("name")?.as_str()?.to_owned(),
        // The API server accepts 1 to 65535 only.
        port: service
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|port| u16::try_from(port).ok())
            .unwrap_or(DEFAULT_SERVICE_PORT),
    })
}

/// `namespace`: where sidekiq-guard is installed, for the command the hint gives.
fn ca_bundle(webhook: &Value, namespace: &str, title: &str) -> Check {
    match webhook.at("/clientConfig/caBundle").and_then(Value::as_str) {
        Some(bundle) if !bundle.is_empty() => Check::pass(title),
        _ => Check::problem(
            Status::Fail,
            title,
            "caBundle is empty: the API server cannot trust the webhook, and every call fails",
            format!(
                "run the certs install Job (kubectl -n {namespace} create job --from=cronjob/sidekiq-guard-certs certs-now), let cert-manager inject it, or patch in your own CA (certs/README.md)"
            ),
        ),
    }
}

fn failure_policy(kind: WebhookKind, webhook: &Value, title: &str) -> Check {
    let policy = webhook
        .get("failurePolicy")
        .and_then(Value::as_str)
        .unwrap_or("Fail");
    match (kind, policy) {
        (_, "Ignore") => Check::pass_with(title, "Ignore"),
        (WebhookKind::Mutating, other) => Check::problem(
            Status::Warn,
            title,
            format!(
                "{other}: while the webhook is down, no pod of an opted-in namespace can be created"
            ),
            "use failurePolicy: Ignore for the mutating webhooks",
        ),
        (WebhookKind::Validating, other) => Check::pass_with(
            title,
            format!(
                "{other}: workloads are rejected while the webhook is down (a deliberate choice under enforcement: deny)"
            ),
        ),
    }
}

fn side_effects(webhook: &Value, title: &str) -> Check {
    match webhook.get("sideEffects").and_then(Value::as_str) {
        Some("None" | "NoneOnDryRun") => Check::pass(title),
        other => Check::problem(
            Status::Fail,
            title,
            format!(
                "{}: dry-run requests (kubectl apply --dry-run=server) are refused",
                other.unwrap_or("unset")
            ),
            "set sideEffects: None; sidekiq-guard has no side effects",
        ),
    }
}

fn timeout(webhook: &Value, title: &str) -> Check {
    let seconds = webhook
        .get("timeoutSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(10);
    if seconds <= 10 {
        Check::pass_with(title, format!("{seconds}s"))
    } else {
        Check::problem(
            Status::Warn,
            title,
            format!("{seconds}s: a hung webhook delays every pod creation that long"),
            "sidekiq-guard answers in milliseconds; 5s is plenty",
        )
    }
}

fn reinvocation(webhook: &Value, title: &str) -> Check {
    match webhook.get("reinvocationPolicy").and_then(Value::as_str) {
        Some("IfNeeded") => Check::pass_with(title, "IfNeeded"),
        other => Check::problem(
            Status::Warn,
            title,
            format!(
                "{}: a later webhook that changes the pod (e.g. a sidecar injector) is not followed by sidekiq-guard",
                other.unwrap_or("Never")
            ),
            "set reinvocationPolicy: IfNeeded; mutating twice changes nothing",
        ),
    }
}

/// Every webhook of both configurations answers pod creations (the validating ones also
/// workloads): one whose rules miss them is called for nothing sidekiq-guard handles.
fn receives_pods(webhook: &Value, title: &str) -> Check {
    let covers = |rule: &Value, field: &str, wanted: &str| {
        crate::workload::list(rule, field)
            .iter()
            .filter_map(Value::as_str)
            .any(|v| v == wanted || v == "*" || v == "*/*")
    };
    let pods = crate::workload::list(webhook, "rules").iter().any(|rule| {
        covers(rule, "apiGroups", "")
            && covers(rule, "resources", "pods")
            && covers(rule, "operations", "CREATE")
    });
    if pods {
        Check::pass(title)
    } else {
        Check::problem(
            Status::Fail,
            title,
            "its rules do not match CREATE of pods: no pod is injected or checked through it",
            "restore its rules from manifests/base/webhooks.yaml",
        )
    }
}

/// The label a namespace selector names namespaces by.
const NAMESPACE_NAME: &str = "kubernetes.io/metadata.name";

/// Opting in is the selectors' work: the webhook never reads namespace labels, and injects
/// every Sidekiq pod it is sent. Each webhook must require the namespace's `enabled` label or
/// the pod's `true` one.
fn selects_opted_in(webhook: &Value, title: &str) -> Check {
    use crate::annotations::{INJECT, INJECT_NAMESPACE_IN, INJECT_POD_IN};
    let read = |field: &str| {
        Selector::from_object(webhook.get(field)).map_err(|err| {
            Check::problem(
                Status::Fail,
                title,
                format!("its {field} cannot be read: {}", err.problem),
                "restore its selectors from manifests/base/webhooks.yaml",
            )
        })
    };
    let (namespaces, pods) = match (read("namespaceSelector"), read("objectSelector")) {
        (Ok(namespaces), Ok(pods)) => (namespaces, pods),
        (Err(problem), _) | (_, Err(problem)) => return problem,
    };
    let by_namespace = namespaces.requires(INJECT, |value| value == INJECT_NAMESPACE_IN);
    let by_pod = pods.requires(INJECT, |value| value == INJECT_POD_IN);
    // Namespaces listed by name (as Helm values often do) are opted in by that list.
    let by_name = namespaces.requires(NAMESPACE_NAME, |_| true);
    if by_namespace || by_pod || by_name {
        Check::pass(title)
    } else {
        Check::problem(
            Status::Fail,
            title,
            format!(
                "neither its namespaceSelector requires {INJECT}={INJECT_NAMESPACE_IN} nor its objectSelector {INJECT}={INJECT_POD_IN}: Sidekiq pods of every namespace are sent, and injected"
            ),
            "restore its selectors from manifests/base/webhooks.yaml",
        )
    }
}

/// The namespace selector must exclude kube-system and the webhook's own namespace, even were
/// they labelled `sidekiq-guard.io/inject=enabled`: by name (`kubernetes.io/metadata.name`), or
/// by a label they carry (the base's `sidekiq-guard.io/admission-webhooks=disabled` on its own,
/// which a kustomize `namespace:` keeps where it renames the namespace).
fn excludes_namespaces(webhook: &Value, excluded: Excluded<'_>, title: &str) -> Check {
    let own = excluded.own.name;
    let remedy = format!(
        "add {{key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system, {own}]}} to namespaceSelector.matchExpressions"
    );
    let selector = match Selector::from_object(webhook.get("namespaceSelector")) {
        Ok(selector) => selector,
        Err(err) => {
            return Check::problem(
                Status::Fail,
                title,
                format!("its namespaceSelector cannot be read: {}", err.problem),
                remedy,
            );
        }
    };
    let missing: Vec<Namespace<'_>> = [excluded.system, excluded.own]
        .into_iter()
        .filter(|namespace| would_send(&selector, *namespace))
        .collect();
    if missing.is_empty() {
        return Check::pass(title);
    }
    let names: Vec<&str> = missing.iter().map(|namespace| namespace.name).collect();
    let mut detail = format!(
        "the namespaceSelector does not exclude {}",
        names.join(" nor ")
    );
    let unread: Vec<&str> = missing
        .iter()
        .filter(|namespace| namespace.labels.is_none())
        .map(|namespace| namespace.name)
        .collect();
    if !unread.is_empty() {
        detail.push_str(&format!(
            " (judged by name alone: the labels of {} were not read)",
            unread.join(" and ")
        ));
    }
    Check::problem(Status::Fail, title, detail, remedy)
}

/// Whether a webhook with the namespace `selector` would be sent the pods of `namespace`, were
/// it opted in.
fn would_send(selector: &Selector, namespace: Namespace<'_>) -> bool {
    use crate::annotations::{INJECT, INJECT_NAMESPACE_IN};
    let mut labels = namespace.labels.cloned().unwrap_or_default();
    labels.insert(NAMESPACE_NAME.to_owned(), namespace.name.into());
    labels.insert(INJECT.to_owned(), INJECT_NAMESPACE_IN.into());
    selector.matches(Some(&labels))
}

/// A webhook configuration's name and its webhooks.
fn name_and_webhooks(config: &Value) -> (&str, &[Value]) {
    let name = config
        .at("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("(unnamed)");
    (name, crate::workload::list(config, "webhooks"))
}

/// A webhook's `clientConfig.caBundle`, as read from its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaBundle<'a> {
    /// `MutatingWebhookConfiguration sidekiq-guard, webhook pod.mutate.sidekiq-guard.io`: where
    /// it was read.
    pub source: String,
    /// The base64 PEM, when the webhook has one.
    pub base64: Option<&'a str>,
}

/// The caBundle of every webhook of a configuration. Each webhook carries its own: the API
/// server verifies calls through one webhook against that webhook's bundle only, and a
/// cainjector or a hand edit can leave one stale while another is fresh.
pub fn ca_bundles(kind: WebhookKind, config: &Value) -> Vec<CaBundle<'_>> {
    let (configuration, webhooks) = name_and_webhooks(config);
    webhooks
        .iter()
        .map(|webhook| CaBundle {
            source: format!(
                "{} {configuration}, webhook {}",
                kind.kind(),
                webhook
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("(unnamed)")
            ),
            base64: webhook
                .at("/clientConfig/caBundle")
                .and_then(Value::as_str)
                .filter(|b| !b.is_empty()),
        })
        .collect()
}

/// Whether a caBundle anchors the serving certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// The webhook has no caBundle, or one that holds no readable certificate.
    Missing,
    /// The bundle holds certificates, none of which signed the serving chain.
    Unsigned,
    /// The serving chain ends at a certificate of the bundle.
    Anchored,
}

/// Judges the trust of every webhook's caBundle in the serving certificate: one check, which
/// names each webhook whose calls the API server would reject. `unread` names the
/// configurations that could not be read (RBAC): what they hold is unknown, a warning.
pub fn ca_bundle_trust(trusts: &[(String, Trust)], unread: &[&str]) -> Check {
    let title = "the caBundle verifies the serving certificate";
    let with = |wanted: Trust| -> Vec<&str> {
        trusts
            .iter()
            .filter(|(_, trust)| *trust == wanted)
            .map(|(source, _)| source.as_str())
            .collect()
    };
    let (unsigned, missing) = (with(Trust::Unsigned), with(Trust::Missing));
    if unsigned.is_empty() && missing.is_empty() {
        if !unread.is_empty() {
            return Check::problem(
                Status::Warn,
                title,
                format!("cannot tell for {}: not readable", unread.join(" and ")),
                "grant get on mutatingwebhookconfigurations and validatingwebhookconfigurations, or run check as a cluster admin",
            );
        }
        return match trusts.len() {
            0 => Check::problem(
                Status::Fail,
                title,
                "no webhook configuration to read a caBundle from",
                "kubectl apply -k manifests/base",
            ),
            1 => Check::pass_with(title, "checked in its 1 webhook"),
            n => Check::pass_with(title, format!("checked in each of {n} webhooks")),
        };
    }
    let mut problems = Vec::new();
    if !unsigned.is_empty() {
        problems.push(format!(
            "the serving certificate is not signed by the caBundle of {}",
            unsigned.join(", ")
        ));
    }
    if !missing.is_empty() {
        problems.push(format!("no usable caBundle in {}", missing.join(", ")));
    }
    Check::problem(
        Status::Fail,
        title,
        format!(
            "{}: the API server rejects every call through {}",
            problems.join("; "),
            if unsigned.len() + missing.len() == 1 {
                "it"
            } else {
                "them"
            }
        ),
        "run the certs install Job again, which rewrites the Secret and every caBundle (or wait for cert-manager's cainjector)",
    )
}

/// Judges the EndpointSlices of the webhook's Service: the API server needs one ready endpoint.
/// An endpoint counts unless its `conditions.ready` is `false` (absent means ready, as the
/// EndpointSlice API defines it).
pub fn service_endpoints(service: &ServiceRef, slices: &[Value]) -> Check {
    let title = service_endpoints_title(service);
    // A terminating endpoint is a replica going away (a rollout, a drained node), not one
    // that fails.
    let (all, ready) = slices
        .iter()
        .flat_map(|slice| crate::workload::list(slice, "endpoints"))
        .filter(|e| e.at("/conditions/terminating").and_then(Value::as_bool) != Some(true))
        .fold((0, 0), |(all, ready), e| {
            let is_ready = e.at("/conditions/ready").and_then(Value::as_bool) != Some(false);
            (all + 1, ready + usize::from(is_ready))
        });
    let pods = format!(
        "kubectl -n {} get pods -l app.kubernetes.io/name=sidekiq-guard; look at their logs",
        service.namespace
    );
    match (ready, all) {
        (0, _) => Check::problem(
            Status::Fail,
            title,
            "no ready endpoint: the API server cannot call the webhook (failurePolicy Ignore lets pods through unprotected)",
            pods,
        ),
        (ready, all) if ready < all => Check::problem(
            Status::Warn,
            title,
            format!(
                "{ready} of {all} ready: the replicas that are not (crash-looping, or a rollout that stalls) leave the webhook one node drain or crash away from unreachable"
            ),
            format!("{pods} and events"),
        ),
        (ready, _) => Check::pass_with(title, format!("{ready} ready")),
    }
}

/// Whether the Service exposes the port the webhooks call: the API server fails every call to
/// a port the Service lacks.
pub fn service_port(service: &ServiceRef, object: &Value) -> Check {
    let title = format!(
        "Service {}/{} exposes port {}",
        service.namespace, service.name, service.port
    );
    let ports: Vec<u64> = object
        .at("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("port").and_then(Value::as_u64))
        .collect();
    if ports.contains(&u64::from(service.port)) {
        return Check::pass(title);
    }
    let has = match ports.as_slice() {
        [] => "none".to_owned(),
        ports => ports
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    };
    Check::problem(
        Status::Fail,
        title,
        format!(
            "the webhooks call port {}, and the Service's ports are {has}: the API server cannot call the webhook",
            service.port
        ),
        "set clientConfig.service.port in both webhook configurations to the Service's port, or give the Service that port",
    )
}

/// The title of [`service_endpoints`], also for when the Service cannot be read.
pub fn service_endpoints_title(service: &ServiceRef) -> String {
    format!(
        "Service {}/{} has ready endpoints",
        service.namespace, service.name
    )
}

/// The names a webhook Service is reached by, the one the API server dials (`S.N.svc`) last:
/// the names its serving certificate must carry.
pub fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
    ]
}

/// Judges whether the serving certificate names the Service the API server calls: it
/// verifies the name `SERVICE.NAMESPACE.svc` against the DNS subject alternative names, as Go's
/// TLS client does (a wildcard matches one label; the common name does not count).
pub fn certificate_names(dns_names: &[String], common_name: &str, service: &ServiceRef) -> Check {
    let wanted = service_dns_names(&service.name, &service.namespace)
        .pop()
        .unwrap_or_default();
    let title = format!("the serving certificate names {wanted}");
    if dns_names.iter().any(|name| dns_name_matches(name, &wanted)) {
        return Check::pass(title);
    }
    let detail = match (dns_names, common_name) {
        ([], "") => "it has no DNS subject alternative name".to_owned(),
        ([], cn) => format!(
            "it has no DNS subject alternative name, only the common name {cn}, which the API server's TLS client ignores"
        ),
        (names, _) => format!("its DNS names are {}", names.join(", ")),
    };
    Check::problem(
        Status::Fail,
        title,
        detail,
        "run the certs install Job with --service and --namespace of the webhook Service",
    )
}

/// Whether the certificate name `pattern` covers `host` as Go's `crypto/x509` verifies one:
/// case-insensitively, a leading `*.` standing for exactly one whole label.
fn dns_name_matches(pattern: &str, host: &str) -> bool {
    let (pattern, host) = (pattern.trim_end_matches('.'), host.trim_end_matches('.'));
    match pattern.strip_prefix("*.") {
        Some(parent) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(parent)),
        None => pattern.eq_ignore_ascii_case(host),
    }
}

/// Judges the days left on the serving certificate of sidekiq-guard installed in `namespace`;
/// `starts` is when its chain becomes valid, when that is still ahead.
pub fn certificate_expiry(
    days_left: i64,
    not_after: &str,
    first: Option<&str>,
    starts: Option<&str>,
    namespace: &str,
) -> Check {
    let title = format!("the serving certificate is valid for {EXPIRY_WARNING_DAYS} days or more");
    // A CA of the chain or of the caBundle that expires before the serving certificate ends the
    // chain's validity with it.
    let which = first.map_or(String::new(), |which| format!(", when {which} expires"));
    if let Some(starts) = starts {
        return Check::problem(
            Status::Fail,
            title,
            format!(
                "it is not valid before {starts}: the API server refuses the webhook until then"
            ),
            "the clock of the machine that issued it runs ahead: issue it again from a machine whose clock is right (certs/README.md)",
        );
    }
    if days_left < 0 {
        Check::problem(
            Status::Fail,
            title,
            format!(
                "{} expired on {not_after}: the API server refuses the webhook",
                first.unwrap_or("it")
            ),
            "renew it: run the certs install Job, check cert-manager's Certificate, or rotate your own (certs/README.md)",
        )
    } else if days_left < EXPIRY_WARNING_DAYS {
        Check::problem(
            Status::Warn,
            title,
            format!("{days_left} days left (until {not_after}{which})"),
            format!(
                "renewal was due 30 days before expiry: the certs CronJob renews it weekly (check that it runs: kubectl -n {namespace} get jobs) and cert-manager its own; a certificate of your own is yours to rotate (certs/README.md)"
            ),
        )
    } else {
        Check::pass_with(
            title,
            format!("{days_left} days left (until {not_after}{which})"),
        )
    }
}

/// Whether a namespace object is opted in (`sidekiq-guard.io/inject=enabled`).
pub fn namespace_opted_in(namespace: &Value) -> bool {
    namespace
        .at("/metadata/labels")
        .and_then(|labels| labels.get(annotations::INJECT))
        .and_then(Value::as_str)
        == Some(annotations::INJECT_NAMESPACE_IN)
}

/// Why a running Sidekiq pod carries no status annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Escape {
    /// Labelled `sidekiq-guard.io/inject=false`.
    OptedOut,
    /// Created before the webhook configuration existed.
    CreatedBeforeInstall,
    /// In a namespace that is not opted in, and not labelled itself.
    NotOptedIn,
    /// Not labelled itself, in a namespace whose labels could not be read: whether the webhook
    /// sees it is unknown.
    OptInUnknown,
    /// Opted in and created after install: the webhook was unreachable (`failurePolicy: Ignore`)
    /// or rejected it.
    Missed,
    /// The webhook saw it and left it alone for a reason a restart does not change (a taken
    /// probe port, a classic sidecar in a Job, an ambiguous container, an excluded namespace):
    /// the reason, with its finding code.
    NotInjectable(String),
}

impl Escape {
    /// The reason in words.
    pub fn reason(&self) -> &str {
        match self {
            Escape::OptedOut => "opted out (label sidekiq-guard.io/inject=false)",
            Escape::CreatedBeforeInstall => {
                "created before sidekiq-guard was installed: restart it"
            }
            Escape::NotOptedIn => {
                "namespace not opted in (label it sidekiq-guard.io/inject=enabled)"
            }
            Escape::OptInUnknown => {
                "cannot tell whether its namespace is opted in (the namespaces could not be read)"
            }
            Escape::Missed => {
                "created before its namespace was opted in, or while the webhook was unreachable (then its logs say why): restart it"
            }
            Escape::NotInjectable(why) => why,
        }
    }

    /// What to do about `pod`.
    pub fn hint(&self, pod: &Value) -> String {
        let field = |path: &str| pod.at(path).and_then(Value::as_str).unwrap_or_default();
        let (namespace, name) = (field("/metadata/namespace"), field("/metadata/name"));
        let controlled = pod
            .at("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|owners| {
                owners
                    .iter()
                    .any(|o| o.get("controller") == Some(&Value::Bool(true)))
            });
        match self {
            Escape::OptedOut => "nothing to do if deliberate".to_owned(),
            Escape::NotInjectable(_) => {
                "fix what the finding says, then restart the pod: as it is, the webhook leaves it alone".to_owned()
            }
            // No controller recreates a bare pod: deleting it would stop the worker for good.
            _ if !controlled => format!(
                "recreate it from its manifest (no controller recreates pod {namespace}/{name}): kubectl -n {namespace} get pod {name} -o yaml, then delete and create it"
            ),
            _ => format!(
                "kubectl -n {namespace} delete pod {name} (its controller recreates it, injected)"
            ),
        }
    }
}

/// Why the Sidekiq `pod` (in a namespace opted in or not; `None` when the namespace's labels
/// could not be read) escaped injection, or `None` when it was injected. `ctx` is the webhook's view (its policy and sidecar mode), under which the pod
/// is reviewed as the webhook would have. Timestamps are RFC 3339 strings as the API returns
/// them, which sort as text.
pub fn escape(
    pod: &Value,
    namespace_opted_in: Option<bool>,
    installed_at: Option<&str>,
    ctx: &Context<'_>,
) -> Option<Escape> {
    let labels = pod.at("/metadata/labels");
    let label = labels
        .and_then(|l| l.get(annotations::INJECT))
        .and_then(Value::as_str);
    let injected = pod
        .at("/metadata/annotations")
        .and_then(|a| a.get(annotations::STATUS))
        .is_some();
    // A pod that has finished runs nothing to protect, and is never injected again; one being
    // deleted is past any advice (restart it, recreate it): its replacement is what counts.
    let finished = matches!(
        pod.at("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    let deleting = pod
        .at("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null());
    if injected || finished || deleting {
        return None;
    }
    match (PodOptIn::of(label), namespace_opted_in) {
        (PodOptIn::Out, _) => return Some(Escape::OptedOut),
        (PodOptIn::Unset, None) => return Some(Escape::OptInUnknown),
        (opt_in, Some(opted)) if !opt_in.considered(opted) => return Some(Escape::NotOptedIn),
        _ => {}
    }
    if let Some(why) = not_injectable(pod, ctx) {
        return Some(Escape::NotInjectable(why));
    }
    let created = pod
        .at("/metadata/creationTimestamp")
        .and_then(Value::as_str);
    match (created, installed_at) {
        (Some(created), Some(installed)) if created < installed => {
            Some(Escape::CreatedBeforeInstall)
        }
        _ => Some(Escape::Missed),
    }
}

/// Why the webhook would leave `pod` alone whenever it is created, if it would.
fn not_injectable(pod: &Value, ctx: &Context<'_>) -> Option<String> {
    let review = review::mutate(pod, ctx);
    let finding = |codes: &[Code]| {
        review
            .findings
            .iter()
            .find(|f| codes.contains(&f.code))
            .map(ToString::to_string)
    };
    match &review.outcome {
        Outcome::Blocked(blocked) => finding(&[blocked.code()]),
        Outcome::Unresolved => finding(&[Code::ContainerAmbiguous, Code::ContainerNotFound]),
        Outcome::Skipped(skip @ Skip::ExcludedNamespace(_)) => Some(skip.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mode;
    use serde_json::json;

    fn webhook(overrides: Value) -> Value {
        let mut webhook = json!({
            "name": "namespace.mutate.sidekiq-guard.io",
            "clientConfig": {"service": {"name": "sidekiq-guard", "namespace": "sidekiq-guard", "path": "/mutate"}, "caBundle": "LS0t"},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
            "namespaceSelector": {"matchExpressions": [
                {"key": "sidekiq-guard.io/inject", "operator": "In", "values": ["enabled"]},
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "sidekiq-guard"]},
            ]},
            "failurePolicy": "Ignore", "sideEffects": "None", "timeoutSeconds": 5, "reinvocationPolicy": "IfNeeded",
        });
        for (key, value) in overrides.as_object().unwrap() {
            webhook[key] = value.clone();
        }
        webhook
    }

    fn config(webhooks: Vec<Value>) -> Value {
        json!({"metadata": {"name": "sidekiq-guard"}, "webhooks": webhooks})
    }

    #[test]
    fn a_sane_configuration_passes() {
        let (checks, services) = webhook_configuration(
            WebhookKind::Mutating,
            &config(vec![webhook(json!({}))]),
            Excluded::named("sidekiq-guard"),
        );
        assert!(
            checks.iter().all(|c| c.status == Status::Pass),
            "{checks:#?}"
        );
        assert_eq!(
            services,
            vec![ServiceRef {
                namespace: "sidekiq-guard".into(),
                name: "sidekiq-guard".into(),
                port: 443,
            }]
        );
        let mut moved = config(vec![webhook(json!({}))]);
        moved["webhooks"][0]["clientConfig"]["service"]["namespace"] = json!("platform");
        let service = install_service([&config(vec![]), &moved]);
        assert_eq!(install_namespace(service.as_ref()), "platform");
        assert_eq!(
            install_namespace(install_service([&config(vec![])]).as_ref()),
            DEFAULT_NAMESPACE
        );
    }

    /// Each Service is read once, with a check per port called on it; a missing one is one
    /// failure, not one per port.
    #[test]
    fn services_grouped_and_a_missing_one_failed_once() {
        let at = |namespace: &str, name: &str, port| ServiceRef {
            namespace: namespace.into(),
            name: name.into(),
            port,
        };
        let groups = by_service(vec![
            at("sg", "webhook", 443),
            at("other", "webhook", 443),
            at("sg", "webhook", 8443),
            at("sg", "webhook", 443),
        ]);
        assert_eq!(
            groups,
            vec![
                vec![at("other", "webhook", 443)],
                vec![at("sg", "webhook", 443), at("sg", "webhook", 8443)],
            ]
        );
        let missing = service_checks(&groups[1], None);
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].status, Status::Fail);
        assert_eq!(
            missing[0].detail.as_deref(),
            Some("the Service does not exist")
        );
        let object = json!({"spec": {"ports": [{"port": 443}]}});
        let statuses: Vec<_> = service_checks(&groups[1], Some(&object))
            .into_iter()
            .map(|check| check.status)
            .collect();
        assert_eq!(statuses, [Status::Pass, Status::Fail]);
    }

    #[test]
    fn endpoints_and_certificate_names() {
        let service = ServiceRef {
            namespace: "sidekiq-guard".into(),
            name: "sidekiq-guard".into(),
            port: 443,
        };
        let slices = [json!({"endpoints": [
            {"addresses": ["10.0.0.1"], "conditions": {"ready": false, "terminating": true}},
            {"addresses": ["10.0.0.2"], "conditions": {}},
        ]})];
        let check = service_endpoints(&service, &slices);
        assert_eq!(
            check.status,
            Status::Pass,
            "a terminating replica is no problem"
        );
        assert_eq!(check.detail.as_deref(), Some("1 ready"));
        let slices = [json!({"endpoints": [
            {"addresses": ["10.0.0.1"], "conditions": {"ready": false}},
            {"addresses": ["10.0.0.2"], "conditions": {"ready": true}},
        ]})];
        let check = service_endpoints(&service, &slices);
        assert_eq!(check.status, Status::Warn);
        assert!(
            check
                .detail
                .as_deref()
                .unwrap()
                .starts_with("1 of 2 ready: "),
            "{check:?}"
        );

        let object = json!({"spec": {"ports": [{"port": 8443}, {"port": 9090}]}});
        let check = service_port(&service, &object);
        assert_eq!(check.status, Status::Fail);
        assert_eq!(
            check.title,
            "Service sidekiq-guard/sidekiq-guard exposes port 443"
        );
        assert_eq!(
            check.detail.as_deref(),
            Some(
                "the webhooks call port 443, and the Service's ports are 8443, 9090: the API server cannot call the webhook"
            )
        );
        let called = ServiceRef {
            port: 8443,
            ..service.clone()
        };
        assert_eq!(service_port(&called, &object).status, Status::Pass);
        assert_eq!(called.display(), "sidekiq-guard/sidekiq-guard:8443");
        let check = service_endpoints(&service, &slices[..0]);
        assert_eq!(check.status, Status::Fail);
        assert_eq!(
            check.title,
            "Service sidekiq-guard/sidekiq-guard has ready endpoints"
        );

        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let check = certificate_names(&names(&["sidekiq-guard.sidekiq-guard.svc"]), "", &service);
        assert_eq!(check.status, Status::Pass);
        let check = certificate_names(&names(&["sidekiq-guard", "other.svc"]), "", &service);
        assert_eq!(check.status, Status::Fail);
        assert_eq!(
            check.detail.as_deref(),
            Some("its DNS names are sidekiq-guard, other.svc")
        );
        // Names as Go's TLS client matches them: a wildcard for one label, any case.
        for (name, matches) in [
            ("*.sidekiq-guard.svc", true),
            ("Sidekiq-Guard.SIDEKIQ-GUARD.svc", true),
            ("sidekiq-guard.sidekiq-guard.svc.", true),
            ("*.svc", false),
            ("*.*.svc", false),
            ("*sidekiq-guard.sidekiq-guard.svc", false),
            ("*.sidekiq-guard.sidekiq-guard.svc", false),
        ] {
            let check = certificate_names(&names(&[name]), "", &service);
            assert_eq!(check.status == Status::Pass, matches, "{name}");
        }
        let check = certificate_names(&[], "sidekiq-guard.sidekiq-guard.svc", &service);
        assert_eq!(
            check.detail.as_deref(),
            Some(
                "it has no DNS subject alternative name, only the common name sidekiq-guard.sidekiq-guard.svc, which the API server's TLS client ignores"
            )
        );
        let check = certificate_names(&[], "", &service);
        assert_eq!(
            check.detail.as_deref(),
            Some("it has no DNS subject alternative name")
        );
    }

    #[test]
    fn every_webhooks_ca_bundle_is_judged() {
        let config = json!({"metadata": {"name": "sidekiq-guard"}, "webhooks": [
            {"name": "pods.sidekiq-guard.io", "clientConfig": {"caBundle": "QUJD"}},
            {"name": "legacy.sidekiq-guard.io", "clientConfig": {"caBundle": ""}},
            {"clientConfig": {}},
        ]});
        let bundles = ca_bundles(WebhookKind::Validating, &config);
        let read: Vec<(&str, Option<&str>)> = bundles
            .iter()
            .map(|b| (b.source.as_str(), b.base64))
            .collect();
        assert_eq!(
            read,
            vec![
                (
                    "ValidatingWebhookConfiguration sidekiq-guard, webhook pods.sidekiq-guard.io",
                    Some("QUJD")
                ),
                (
                    "ValidatingWebhookConfiguration sidekiq-guard, webhook legacy.sidekiq-guard.io",
                    None
                ),
                (
                    "ValidatingWebhookConfiguration sidekiq-guard, webhook (unnamed)",
                    None
                ),
            ]
        );

        let fresh = ("M, webhook a".to_owned(), Trust::Anchored);
        let check = ca_bundle_trust(&[fresh.clone(), fresh.clone()], &[]);
        assert_eq!(check.status, Status::Pass);
        assert_eq!(
            check.detail.as_deref(),
            Some("checked in each of 2 webhooks")
        );
        let check = ca_bundle_trust(
            std::slice::from_ref(&fresh),
            &["ValidatingWebhookConfiguration sidekiq-guard"],
        );
        assert_eq!(check.status, Status::Warn);
        assert_eq!(
            check.detail.as_deref(),
            Some("cannot tell for ValidatingWebhookConfiguration sidekiq-guard: not readable")
        );
        assert_eq!(ca_bundle_trust(&[], &["M", "V"]).status, Status::Warn);
        assert_eq!(ca_bundle_trust(&[], &[]).status, Status::Fail);

        let stale = ("V, webhook b".to_owned(), Trust::Unsigned);
        let check = ca_bundle_trust(&[fresh.clone(), stale.clone()], &["X"]);
        assert_eq!(check.status, Status::Fail);
        assert_eq!(
            check.detail.as_deref(),
            Some(
                "the serving certificate is not signed by the caBundle of V, webhook b: the API server rejects every call through it"
            )
        );
        let missing = ("M, webhook x".to_owned(), Trust::Missing);
        let check = ca_bundle_trust(&[missing, stale], &[]);
        assert_eq!(
            check.detail.as_deref(),
            Some(
                "the serving certificate is not signed by the caBundle of V, webhook b; no usable caBundle in M, webhook x: the API server rejects every call through them"
            )
        );
    }

    /// The own namespace may be excluded by a label it carries, so that a kustomize
    /// `namespace:` that renames it keeps it excluded.
    #[test]
    fn the_own_namespace_may_be_excluded_by_its_labels() {
        let disabled = json!({"sidekiq-guard.io/admission-webhooks": "disabled"});
        let selector = json!({"namespaceSelector": {"matchExpressions": [
            {"key": "sidekiq-guard.io/inject", "operator": "In", "values": ["enabled"]},
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "sidekiq-guard"]},
            {"key": "sidekiq-guard.io/admission-webhooks", "operator": "NotIn", "values": ["disabled"]},
        ]}});
        let system_labels = json!({"kubernetes.io/metadata.name": "kube-system"});
        let system = Namespace {
            name: "kube-system",
            labels: system_labels.as_object(),
        };
        let excluded = |own: Namespace<'_>, selector: &Value| {
            let (checks, _) = webhook_configuration(
                WebhookKind::Mutating,
                &config(vec![webhook(selector.clone())]),
                Excluded { system, own },
            );
            let check = checks
                .into_iter()
                .find(|c| {
                    c.title
                        .ends_with("never sees kube-system nor its own namespace")
                })
                .unwrap();
            (check.status, check.detail)
        };
        let platform = Namespace {
            name: "platform",
            labels: disabled.as_object(),
        };
        assert_eq!(excluded(platform, &selector), (Status::Pass, None));
        assert_eq!(
            excluded(Namespace::named("platform"), &selector),
            (
                Status::Fail,
                Some("the namespaceSelector does not exclude platform (judged by name alone: the labels of platform were not read)".to_owned())
            )
        );
        // Opting the namespace in does not let it through.
        let enabled = json!({"sidekiq-guard.io/admission-webhooks": "disabled", "sidekiq-guard.io/inject": "enabled"});
        let labelled = Namespace {
            name: "platform",
            labels: enabled.as_object(),
        };
        assert_eq!(excluded(labelled, &selector).0, Status::Pass);
        let by_label_only = json!({"namespaceSelector": {"matchExpressions": [
            {"key": "sidekiq-guard.io/admission-webhooks", "operator": "NotIn", "values": ["disabled"]},
        ]}});
        assert_eq!(
            excluded(platform, &by_label_only),
            (
                Status::Fail,
                Some("the namespaceSelector does not exclude kube-system".to_owned())
            )
        );
        let unreadable = json!({"namespaceSelector": {"matchExpressions": [{"key": "x", "operator": "Gt", "values": ["1"]}]}});
        let (status, detail) = excluded(platform, &unreadable);
        assert_eq!(status, Status::Fail);
        assert!(detail.unwrap().starts_with(
            "its namespaceSelector cannot be read: the matchExpression on x has operator \"Gt\""
        ));
    }

    /// Opting in is the selectors' work: a webhook that requires neither label sends every
    /// namespace's Sidekiq pods to be injected.
    #[test]
    fn only_opted_in_pods_may_reach_a_webhook() {
        let excluded = json!({"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "sidekiq-guard"]});
        let opted = |overrides: Value| {
            let (checks, _) = webhook_configuration(
                WebhookKind::Validating,
                &config(vec![webhook(overrides)]),
                Excluded::named("sidekiq-guard"),
            );
            let check = checks
                .into_iter()
                .find(|c| c.title.ends_with("only opted-in pods reach it"))
                .unwrap();
            (check.status, check.detail)
        };
        let everyone = json!({"namespaceSelector": {"matchExpressions": [excluded.clone()]}, "objectSelector": {}});
        assert_eq!(
            opted(everyone),
            (
                Status::Fail,
                Some("neither its namespaceSelector requires sidekiq-guard.io/inject=enabled nor its objectSelector sidekiq-guard.io/inject=true: Sidekiq pods of every namespace are sent, and injected".to_owned())
            )
        );
        let loose = json!({"namespaceSelector": {"matchExpressions": [
            {"key": "sidekiq-guard.io/inject", "operator": "In", "values": ["enabled", "yes"]}, excluded.clone(),
        ]}});
        assert_eq!(opted(loose).0, Status::Fail);
        let by_pod = json!({
            "namespaceSelector": {"matchExpressions": [excluded]},
            "objectSelector": {"matchLabels": {"sidekiq-guard.io/inject": "true"}},
        });
        assert_eq!(opted(by_pod), (Status::Pass, None));
        let by_name = json!({"namespaceSelector": {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["shop"]},
        ]}});
        assert_eq!(opted(by_name), (Status::Pass, None));
        assert_eq!(opted(json!({})), (Status::Pass, None));
        let unreadable = json!({"objectSelector": {"matchLabels": ["sidekiq-guard.io/inject"]}});
        assert_eq!(
            opted(unreadable),
            (
                Status::Fail,
                Some(
                    "its objectSelector cannot be read: matchLabels must be a mapping of labels"
                        .to_owned()
                )
            )
        );
    }

    /// Rules match pod creations through wildcards too (`*`, `*/*` for every resource and
    /// subresource).
    #[test]
    fn wildcard_rules_receive_pods() {
        let receives = |rule: Value| {
            let webhook = webhook(json!({"rules": [rule]}));
            receives_pods(&webhook, "t").status
        };
        let any = json!({"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*/*"]});
        assert_eq!(receives(any), Status::Pass);
        let configmaps = json!({"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]});
        assert_eq!(receives(configmaps), Status::Fail);
    }

    #[test]
    fn hints_name_the_namespace_sidekiq_guard_is_installed_in() {
        let empty = webhook(json!({
            "clientConfig": {"service": {"name": "sidekiq-guard", "namespace": "platform"}, "caBundle": ""},
        }));
        let (checks, _) = webhook_configuration(
            WebhookKind::Mutating,
            &config(vec![empty]),
            Excluded::named("platform"),
        );
        let hint = checks
            .iter()
            .find(|c| c.title.ends_with("has a caBundle"))
            .and_then(|c| c.hint.as_deref());
        assert!(
            hint.is_some_and(|hint| hint.contains(
                "(kubectl -n platform create job --from=cronjob/sidekiq-guard-certs certs-now)"
            )),
            "{hint:?}"
        );
    }

    #[test]
    fn problems_are_named() {
        let bad = webhook(json!({
            "failurePolicy": "Fail", "sideEffects": "Some", "timeoutSeconds": 30,
            "reinvocationPolicy": "Never",
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["pods"]}],
            "namespaceSelector": {"matchLabels": {"sidekiq-guard.io/inject": "enabled"}},
            "clientConfig": {"service": {"name": "sidekiq-guard", "namespace": "sidekiq-guard"}, "caBundle": ""},
        }));
        let (checks, _) = webhook_configuration(
            WebhookKind::Mutating,
            &config(vec![bad]),
            Excluded::named("sidekiq-guard"),
        );
        let problems: Vec<(Status, &str)> = checks
            .iter()
            .filter(|c| c.status != Status::Pass)
            .map(|c| (c.status, c.detail.as_deref().unwrap()))
            .collect();
        assert_eq!(
            problems,
            vec![
                (
                    Status::Fail,
                    "caBundle is empty: the API server cannot trust the webhook, and every call fails"
                ),
                (
                    Status::Warn,
                    "Fail: while the webhook is down, no pod of an opted-in namespace can be created"
                ),
                (
                    Status::Fail,
                    "Some: dry-run requests (kubectl apply --dry-run=server) are refused"
                ),
                (
                    Status::Warn,
                    "30s: a hung webhook delays every pod creation that long"
                ),
                (
                    Status::Fail,
                    "its rules do not match CREATE of pods: no pod is injected or checked through it"
                ),
                (
                    Status::Fail,
                    "the namespaceSelector does not exclude kube-system nor sidekiq-guard (judged by name alone: the labels of kube-system and sidekiq-guard were not read)"
                ),
                (
                    Status::Warn,
                    "Never: a later webhook that changes the pod (e.g. a sidecar injector) is not followed by sidekiq-guard"
                ),
            ]
        );
    }

    #[test]
    fn certificate_expiry_thresholds() {
        // The certs CronJob renews at 30 days on its first weekly run after: 23–29 is healthy.
        let statuses: Vec<(i64, Status)> = [90, 23, 21, 20, -1]
            .into_iter()
            .map(|days| {
                let check = certificate_expiry(days, "2026-12-17", None, None, "sidekiq-guard");
                (days, check.status)
            })
            .collect();
        assert_eq!(
            statuses,
            [
                (90, Status::Pass),
                (23, Status::Pass),
                (21, Status::Pass),
                (20, Status::Warn),
                (-1, Status::Fail)
            ]
        );
        let ca_first = certificate_expiry(
            -1,
            "2026-11-25",
            Some("the CA (caBundle)"),
            None,
            "sidekiq-guard",
        );
        assert_eq!(
            ca_first.detail.as_deref(),
            Some("the CA (caBundle) expired on 2026-11-25: the API server refuses the webhook")
        );
        let overdue = certificate_expiry(
            12,
            "2026-12-08",
            Some("intermediate CA \"issuer\" (tls.crt)"),
            None,
            "platform",
        );
        assert!(
            overdue.hint.as_deref().is_some_and(
                |hint| hint.contains("(check that it runs: kubectl -n platform get jobs)")
            ),
            "{overdue:?}"
        );
        assert_eq!(
            overdue.detail.as_deref(),
            Some(
                "12 days left (until 2026-12-08, when intermediate CA \"issuer\" (tls.crt) expires)"
            )
        );
        // Days ahead do not make a certificate good before it starts.
        let early = certificate_expiry(299, "2027-09-22", None, Some("2026-12-02"), "x");
        assert_eq!(early.status, Status::Fail);
        assert_eq!(
            early.detail.as_deref(),
            Some(
                "it is not valid before 2026-12-02: the API server refuses the webhook until then"
            )
        );
    }

    #[test]
    fn finished_pods_and_bare_pods_get_their_own_answers() {
        let policy = crate::Policy::default();
        let ctx = Context {
            policy: &policy,
            mode: Mode::Native,
            namespace: None,
        };
        let worker = json!({
            "metadata": {"name": "w", "namespace": "shop", "creationTimestamp": "2026-11-21T00:00:00Z"},
            "spec": {"containers": [{"name": "w", "command": ["sidekiq"], "env": [{"name": "REDIS_URL", "value": "redis://r"}]}]},
            "status": {"phase": "Running"},
        });
        let installed = Some("2026-11-20T10:00:00Z");
        let missed = escape(&worker, Some(true), installed, &ctx).unwrap();
        assert_eq!(missed, Escape::Missed);
        // Nothing recreates a bare pod: deleting it is not the way.
        assert_eq!(
            missed.hint(&worker),
            "recreate it from its manifest (no controller recreates pod shop/w): kubectl -n shop get pod w -o yaml, then delete and create it"
        );
        let mut owned = worker.clone();
        owned["metadata"]["ownerReferences"] =
            json!([{"kind": "ReplicaSet", "name": "w-7d9c8", "controller": true}]);
        assert_eq!(
            missed.hint(&owned),
            "kubectl -n shop delete pod w (its controller recreates it, injected)"
        );
        // A finished pod runs nothing to protect.
        let mut finished = worker.clone();
        finished["status"]["phase"] = json!("Succeeded");
        assert_eq!(escape(&finished, Some(true), installed, &ctx), None);
        let mut deleting = worker.clone();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-11-26T10:00:00Z");
        assert_eq!(escape(&deleting, Some(true), installed, &ctx), None);
    }

    #[test]
    fn why_pods_escaped() {
        let installed = Some("2026-11-20T10:00:00Z");
        let policy = crate::Policy::default();
        let ctx = Context {
            policy: &policy,
            mode: Mode::Native,
            namespace: None,
        };
        // The escape of a pod with `label` (the inject label's value), created at `created`,
        // injected or not, in a namespace opted in or not (`None`: unreadable).
        let why = |label: Option<&str>, created: &str, injected: bool, opted: Option<bool>| {
            let mut pod = json!({"metadata": {"labels": {}, "creationTimestamp": created}});
            if let Some(label) = label {
                pod["metadata"]["labels"]["sidekiq-guard.io/inject"] = json!(label);
            }
            if injected {
                pod["metadata"]["annotations"] = json!({"sidekiq-guard.io/status": "{}"});
            }
            escape(&pod, opted, installed, &ctx)
        };
        let (before, after) = ("2026-11-19T00:00:00Z", "2026-11-21T00:00:00Z");
        assert_eq!(why(None, after, true, Some(true)), None);
        assert_eq!(
            why(Some("false"), after, false, Some(true)),
            Some(Escape::OptedOut)
        );
        assert_eq!(
            why(None, before, false, Some(true)),
            Some(Escape::CreatedBeforeInstall)
        );
        assert_eq!(why(None, after, false, Some(true)), Some(Escape::Missed));
        assert_eq!(
            why(None, after, false, Some(false)),
            Some(Escape::NotOptedIn)
        );
        assert_eq!(
            why(Some("true"), before, false, Some(false)),
            Some(Escape::CreatedBeforeInstall)
        );
        // Namespaces unreadable: unknown for an unlabelled pod, known for a labelled one.
        assert_eq!(why(None, after, false, None), Some(Escape::OptInUnknown));
        assert_eq!(
            why(Some("true"), before, false, None),
            Some(Escape::CreatedBeforeInstall)
        );
    }

    #[test]
    fn pods_the_webhook_leaves_alone_say_why_not_restart() {
        let policy = crate::Policy::parse("excludedNamespaces: [legacy]").unwrap();
        let ctx = |mode| Context {
            policy: &policy,
            mode,
            namespace: None,
        };
        let pod = |namespace: &str, containers: Value, owner: &str| {
            json!({
                "kind": "Pod",
                "metadata": {
                    "name": "w", "namespace": namespace,
                    "creationTimestamp": "2026-11-21T00:00:00Z",
                    "ownerReferences": [{"kind": owner, "name": "x", "controller": true}],
                },
                "spec": {"containers": containers},
            })
        };
        let sidekiq = |name: &str| json!({"name": name, "image": "app", "command": ["bundle", "exec", "sidekiq"], "env": [{"name": "REDIS_URL", "value": "redis://redis:6379/0"}]});
        let installed = Some("2026-11-20T10:00:00Z");
        let why = |pod: &Value, mode| match escape(pod, Some(true), installed, &ctx(mode)) {
            Some(Escape::NotInjectable(why)) => why,
            other => panic!("{other:?}"),
        };
        let two = pod("shop", json!([sidekiq("a"), sidekiq("b")]), "ReplicaSet");
        assert!(why(&two, Mode::Native).starts_with("SG011 container-ambiguous: "));
        let job = pod("shop", json!([sidekiq("a")]), "Job");
        assert!(why(&job, Mode::Classic).starts_with("SG016 classic-sidecar-in-job: "));
        let configured_in_ruby = pod(
            "shop",
            json!([{"name": "a", "image": "app", "command": ["bundle", "exec", "sidekiq"]}]),
            "ReplicaSet",
        );
        assert!(
            why(&configured_in_ruby, Mode::Native).starts_with("SG014 redis-settings-missing: ")
        );
        let excluded = pod("legacy", json!([sidekiq("a")]), "ReplicaSet");
        assert_eq!(
            why(&excluded, Mode::Native),
            "namespace legacy is excluded by the policy (excludedNamespaces)"
        );
        // Injectable: the webhook missed it, and a restart injects it.
        let fine = pod("shop", json!([sidekiq("a")]), "ReplicaSet");
        assert_eq!(
            escape(&fine, Some(true), installed, &ctx(Mode::Native)),
            Some(Escape::Missed)
        );
    }
}
