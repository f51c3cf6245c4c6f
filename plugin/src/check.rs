//! `kubectl sidekiq check`: installation health in Linkerd-check style. The plugin fetches the
//! objects; the judgements are the core's ([`sidekiq_guard::install`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::SystemTime;

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;
use sidekiq_guard::errors::printable_lines;
use sidekiq_guard::install::{self, Check, Escape, Status, Trust, WebhookKind};
use sidekiq_guard::pointer::Pointer as _;
use sidekiq_guard::{Context, Mode, Policy, analysis, timestamp, x509};

use crate::cli::{CheckArgs, CheckFormat, Cli};
use crate::cluster::{self, Cluster, Scope};
use crate::error::Error;

/// A group of checks.
#[derive(Debug, Serialize)]
pub(crate) struct Category {
    pub(crate) name: &'static str,
    pub(crate) checks: Vec<Check>,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) categories: Vec<Category>,
    /// No check failed (warnings allowed).
    pub(crate) success: bool,
}

/// Runs `check`; returns whether a check failed.
pub(crate) async fn run(
    cli: &Cli,
    args: &CheckArgs,
    out: &mut dyn Write,
    color: bool,
) -> Result<bool, Error> {
    let categories = gather(cli, args).await?;
    let success = categories
        .iter()
        .all(|c| c.checks.iter().all(|check| check.status != Status::Fail));
    let report = Report {
        categories,
        success,
    };
    match args.report.output {
        CheckFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &report)
                .map_err(|e| Error::Output(e.into()))?;
            writeln!(out).map_err(Error::Output)?;
        }
        CheckFormat::Yaml => {
            let text = serde_saphyr::to_string(&report)
                .map_err(|e| Error::Manifest(crate::manifests::ManifestError::WriteYaml(e)))?;
            out.write_all(text.as_bytes()).map_err(Error::Output)?;
        }
        CheckFormat::Table => print(&report, out, color).map_err(Error::Output)?,
    }
    Ok(!report.success)
}

async fn gather(cli: &Cli, args: &CheckArgs) -> Result<Vec<Category>, Error> {
    let mut categories = Vec::new();
    let title = "can reach the Kubernetes API";
    let reached = match Cluster::connect(&cli.cluster).await {
        Err(error @ Error::Kubeconfig { .. }) => return Err(error),
        Err(error) => Err(error),
        Ok(cluster) => match cluster.version().await {
            Ok((version, numbers)) => Ok((cluster, version, numbers)),
            Err(error) => Err(error),
        },
    };
    let (cluster, server) = match reached {
        Ok((cluster, version, numbers)) => {
            let detail = format!("{} ({version})", cluster.server());
            categories.push(Category {
                name: "kubernetes-api",
                checks: vec![Check::pass_with(title, detail)],
            });
            (cluster, numbers)
        }
        Err(error) => {
            let check = Check::problem(
                Status::Fail,
                title,
                sidekiq_guard::errors::chain(&error),
                "check the kubeconfig, its context and the network",
            );
            categories.push(Category {
                name: "kubernetes-api",
                checks: vec![check],
            });
            return Ok(categories);
        }
    };

    // Both configurations are read first: the namespace their Service is in is where
    // sidekiq-guard is installed, unless --install-namespace says otherwise.
    let mut configs = Vec::new();
    for (kind, resource) in [
        (WebhookKind::Mutating, cluster::MUTATING_WEBHOOKS),
        (WebhookKind::Validating, cluster::VALIDATING_WEBHOOKS),
    ] {
        let read = cluster.get_object(resource, None, &args.webhook).await;
        configs.push((kind, read));
    }
    let install_service = install::install_service(
        configs
            .iter()
            .filter_map(|(_, read)| read.as_ref().ok()?.as_ref()),
    );
    let install_namespace = args
        .install_namespace
        .clone()
        .unwrap_or_else(|| install::install_namespace(install_service.as_ref()).to_owned());

    let mut webhook = Vec::new();
    let mut services = Vec::new();
    let mut ca_bundles = Vec::new();
    let mut unread = Vec::new();
    let mut installed_at = None;
    // Namespaces are read once: for the labels the webhooks may exclude kube-system and the
    // install namespace by, and for those opted in.
    let listed = cluster.list(cluster::NAMESPACES, &Scope::All, None).await;
    let excluded = install::Excluded {
        system: listed_namespace(&listed, sidekiq_guard::policy::SYSTEM_NAMESPACE),
        own: listed_namespace(&listed, &install_namespace),
    };
    for (kind, read) in configs {
        let title = format!("{} {} exists", kind.kind(), args.webhook);
        match read {
            Ok(Some(config)) => {
                webhook.push(Check::pass(title));
                ca_bundles.extend(
                    install::ca_bundles(kind, &config)
                        .into_iter()
                        .map(|bundle| (bundle.source, bundle.base64.map(str::to_owned))),
                );
                if kind == WebhookKind::Mutating {
                    installed_at = config
                        .at("/metadata/creationTimestamp")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                }
                let (checks, called) = install::webhook_configuration(kind, &config, excluded);
                webhook.extend(checks);
                services.extend(called);
            }
            Ok(None) => webhook.push(Check::problem(
                Status::Fail,
                title,
                "not found: sidekiq-guard is not installed, or under another name",
                "kubectl apply -k manifests/base (or pass --webhook NAME)",
            )),
            Err(error) => {
                unread.push(format!("{} {}", kind.kind(), args.webhook));
                webhook.push(unreadable(title, &error));
            }
        }
    }
    for called in install::by_service(services) {
        webhook.extend(service_checks(&cluster, &called).await);
    }
    categories.push(Category {
        name: "sidekiq-guard webhook",
        checks: webhook,
    });

    categories.push(Category {
        name: "certificates",
        checks: certificates(
            &cluster,
            args,
            &install_namespace,
            (&ca_bundles, &unread),
            install_service,
        )
        .await,
    });

    let (namespace_checks, opted_in) = namespaces(&listed);
    categories.push(Category {
        name: "namespaces",
        checks: namespace_checks,
    });
    categories.push(Category {
        name: "sidekiq pods",
        checks: sidekiq_pods(
            &cluster,
            cli,
            opted_in.as_deref(),
            installed_at.as_deref(),
            server,
        )
        .await,
    });
    Ok(categories)
}

/// A check that could not run because reading failed. RBAC's refusal is a warning: your role,
/// not the installation, stops the check. Any other failure (an API error, a timeout) fails it:
/// the installation was not shown healthy, and `check` in a script must not pass.
fn unreadable(title: String, error: &Error) -> Check {
    let (status, hint) = match error {
        Error::Forbidden { .. } => (
            Status::Warn,
            "grant the permission named above, or run check as a cluster admin",
        ),
        _ => (Status::Fail, "retry; check the API server's health"),
    };
    let error = sidekiq_guard::errors::chain(error);
    Check::problem(status, title, format!("cannot tell: {error}"), hint)
}

/// Reads one Service the webhooks call (`called`: a group of [`install::by_service`]) and its
/// EndpointSlices, for the core's checks.
async fn service_checks(cluster: &Cluster, called: &[install::ServiceRef]) -> Vec<Check> {
    let service = &called[0];
    let title = install::service_endpoints_title(service);
    let mut checks = match cluster
        .get_object(cluster::SERVICES, Some(&service.namespace), &service.name)
        .await
    {
        Ok(Some(object)) => install::service_checks(called, Some(&object)),
        // No endpoints to look for.
        Ok(None) => return install::service_checks(called, None),
        Err(error) => return vec![unreadable(title, &error)],
    };
    let scope = Scope::Namespace(service.namespace.clone());
    let selector = format!("kubernetes.io/service-name={}", service.name);
    checks.push(
        match cluster
            .list(cluster::ENDPOINT_SLICES, &scope, Some(&selector))
            .await
        {
            Ok(slices) => install::service_endpoints(service, &slices),
            Err(error) => unreadable(title, &error),
        },
    );
    checks
}

async fn certificates(
    cluster: &Cluster,
    args: &CheckArgs,
    namespace: &str,
    (ca_bundles, unread): (&[(String, Option<String>)], &[String]),
    service: Option<install::ServiceRef>,
) -> Vec<Check> {
    let verify_title = "the caBundle verifies the serving certificate";
    let secret = match cluster
        .get_object(cluster::SECRETS, Some(namespace), &args.tls_secret)
        .await
    {
        Ok(Some(secret)) => secret,
        Ok(None) => {
            return vec![Check::problem(
                Status::Fail,
                format!(
                    "Secret {}/{} holds the serving certificate",
                    namespace, args.tls_secret
                ),
                "not found",
                "run the certs install Job, check cert-manager's Certificate, or create it with your own certificate (certs/README.md)",
            )];
        }
        Err(error) => {
            return vec![unreadable(
                format!(
                    "Secret {}/{} holds the serving certificate",
                    namespace, args.tls_secret
                ),
                &error,
            )];
        }
    };
    let leaf_pem = secret
        .at("/data/tls.crt")
        .and_then(Value::as_str)
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok());
    let Some(leaf_pem) = leaf_pem else {
        return vec![Check::problem(
            Status::Fail,
            verify_title,
            "the Secret has no tls.crt",
            "run the certs install Job again",
        )];
    };
    let chain = x509::pem_certificates(&leaf_pem, "tls.crt").unwrap_or_default();
    let Some(leaf) = chain
        .first()
        .and_then(|der| x509::inspect(der, "tls.crt").ok())
    else {
        return vec![Check::problem(
            Status::Fail,
            verify_title,
            "tls.crt holds no readable certificate",
            "run the certs install Job again",
        )];
    };
    let mut checks = Vec::new();
    // Each webhook's caBundle, decoded once for both the trust and the expiry checks.
    let bundles: Vec<Vec<Vec<u8>>> = ca_bundles
        .iter()
        .map(|(_, bundle)| x509::ca_bundle_anchors(bundle.as_deref()))
        .collect();
    let trusts: Vec<(String, Trust)> = ca_bundles
        .iter()
        .zip(&bundles)
        .map(|((source, _), anchors)| (source.clone(), x509::trust(&chain, anchors)))
        .collect();
    let unread: Vec<&str> = unread.iter().map(String::as_str).collect();
    checks.push(install::ca_bundle_trust(&trusts, &unread));
    if let Some(service) = service {
        checks.push(install::certificate_names(
            &leaf.dns_names,
            &leaf.common_name,
            &service,
        ));
    }
    let now = x509::unix(SystemTime::now());
    let (not_after, first) = x509::first_expiry(&chain, &bundles).unwrap_or((leaf.not_after, None));
    let days = (not_after - now).div_euclid(86_400);
    let starts = x509::valid_from(&chain)
        .filter(|start| *start > now)
        .map(timestamp::format);
    checks.push(install::certificate_expiry(
        days,
        &timestamp::format(not_after),
        first.as_deref(),
        starts.as_deref(),
        namespace,
    ));
    checks
}

/// `name` as `listed`, for its labels; known by its name alone when the list could not be read
/// or does not hold it.
fn listed_namespace<'a>(
    listed: &'a Result<Vec<Value>, Error>,
    name: &'a str,
) -> install::Namespace<'a> {
    listed
        .as_ref()
        .ok()
        .and_then(|all| {
            all.iter()
                .find(|ns| ns.at("/metadata/name").and_then(Value::as_str) == Some(name))
        })
        .map_or_else(
            || install::Namespace::named(name),
            |ns| install::Namespace::of(name, ns),
        )
}

/// The namespaces check, and the opted-in namespaces (`None` when they cannot be read).
fn namespaces(listed: &Result<Vec<Value>, Error>) -> (Vec<Check>, Option<Vec<String>>) {
    let title = "namespaces are opted in (label sidekiq-guard.io/inject=enabled)";
    match listed {
        Ok(all) => {
            let opted: Vec<String> = all
                .iter()
                .filter(|ns| install::namespace_opted_in(ns))
                .filter_map(|ns| {
                    ns.at("/metadata/name")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .collect();
            let check = if opted.is_empty() {
                Check::problem(
                    Status::Warn,
                    title,
                    "none: only pods labelled sidekiq-guard.io/inject=true are injected",
                    "kubectl label namespace NAME sidekiq-guard.io/inject=enabled",
                )
            } else {
                Check::pass_with(title, opted.join(", "))
            };
            (vec![check], Some(opted))
        }
        Err(error) => (vec![unreadable(title.to_owned(), error)], None),
    }
}

async fn sidekiq_pods(
    cluster: &Cluster,
    cli: &Cli,
    opted_in: Option<&[String]>,
    installed_at: Option<&str>,
    server: Option<(u32, u32)>,
) -> Vec<Check> {
    // The webhook's view as far as the plugin can tell: its own policy ConfigMap may differ
    // (excluded namespaces, a forced sidecar mode), the default policy's `auto` does not.
    let policy = Policy::default();
    let ctx = Context {
        policy: &policy,
        mode: Mode::resolve(policy.sidecar.mode, server),
        namespace: None,
    };
    let scope = if cli.cluster.namespace.is_some() {
        cluster.scope(&cli.cluster)
    } else {
        Scope::All
    };
    let pods = match cluster
        .list(cluster::PODS, &scope, cli.cluster.selector.as_deref())
        .await
    {
        Ok(pods) => pods,
        Err(error) => {
            return vec![unreadable(
                "every Sidekiq pod is injected".to_owned(),
                &error,
            )];
        }
    };
    let mut checks = Vec::new();
    let mut injected = 0;
    let mut outside: BTreeMap<String, usize> = BTreeMap::new();
    for pod in pods.iter().filter(|p| analysis::is_sidekiq(p)) {
        let namespace = pod
            .at("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = pod
            .at("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let opted = opted_in.map(|list| list.iter().any(|n| n == namespace));
        match install::escape(pod, opted, installed_at, &ctx) {
            None => injected += 1,
            Some(Escape::NotOptedIn | Escape::OptInUnknown) => {
                *outside.entry(namespace.to_owned()).or_default() += 1;
            }
            Some(escape) => checks.push(Check::problem(
                Status::Warn,
                format!("pod {namespace}/{name} is injected"),
                escape.reason(),
                escape.hint(pod),
            )),
        }
    }
    if !outside.is_empty() {
        let list: Vec<String> = outside
            .iter()
            .map(|(ns, n)| format!("{ns} ({n})"))
            .collect();
        checks.push(match opted_in {
            Some(_) => Check::problem(
                Status::Warn,
                "Sidekiq pods run only in opted-in namespaces",
                format!("Sidekiq pods in namespaces not opted in: {}", list.join(", ")),
                "kubectl label namespace NAME sidekiq-guard.io/inject=enabled, then restart their workloads",
            ),
            // The namespaces could not be read (see above): say what is known, no more.
            None => Check::problem(
                Status::Warn,
                "Sidekiq pods run only in opted-in namespaces",
                format!(
                    "cannot tell whether these namespaces are opted in, so whether the webhook sees their uninjected Sidekiq pods: {}",
                    list.join(", ")
                ),
                "grant list namespaces to see it, or check the sidekiq-guard.io/inject label of these namespaces",
            ),
        });
    }
    if checks.is_empty() {
        checks.push(Check::pass_with(
            "every Sidekiq pod is injected",
            format!("{injected} pods"),
        ));
    }
    checks
}

fn print(report: &Report, out: &mut dyn Write, color: bool) -> std::io::Result<()> {
    let paint = |status: Status, text: &str| -> String {
        if !color {
            return text.to_owned();
        }
        let code = match status {
            Status::Pass => "32",
            Status::Warn => "33",
            Status::Fail => "31",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    };
    for (i, category) in report.categories.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{}", category.name)?;
        writeln!(out, "{}", "-".repeat(category.name.chars().count()))?;
        for check in &category.checks {
            // Titles and details quote the cluster's objects and the API server's messages.
            writeln!(
                out,
                "{} {}",
                paint(check.status, check.status.mark()),
                printable_lines(check.title.clone())
            )?;
            if let Some(detail) = &check.detail {
                writeln!(out, "    {}", printable_lines(detail.clone()))?;
            }
            if let Some(hint) = &check.hint {
                writeln!(out, "    hint: {}", printable_lines(hint.clone()))?;
            }
        }
    }
    writeln!(out)?;
    let verdict = if report.success {
        Status::Pass
    } else {
        Status::Fail
    };
    writeln!(
        out,
        "Status check results are {}",
        paint(verdict, verdict.mark())
    )
}
