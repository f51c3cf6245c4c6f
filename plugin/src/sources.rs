//! Where process data comes from: a pod's probe (`/status` through the pod proxy) or Redis.

use std::time::Duration;

use http::StatusCode;
use sidekiq_guard::probe::drain::State;
use sidekiq_guard::probe::observe::{Scope, Tracker};
use sidekiq_guard::probe::report::{self, DrainReport, ProcessReport, Status};
use sidekiq_guard::redis::{Reader, RedisSettings, UrlSource};

use crate::cli::RequestTimeout;
use crate::cluster::{Cluster, Proxied};
use crate::error::Error;

/// The reader of a one-shot command (`status`, `validate`) when `--redis-url` is given: its
/// reads wait `--request-timeout`, as API requests do.
pub(crate) fn one_shot_reader(
    url: Option<&str>,
    namespace: Option<&str>,
    timeout: &RequestTimeout,
) -> Result<Option<Reader>, Error> {
    url.map(|url| redis_reader(url, namespace, Some(timeout)))
        .transpose()
}

/// A Redis reader for `--redis-url` and `--redis-namespace`. `reply_timeout`, when given, is
/// how long one read may take: a one-shot read of every process (a large pipeline, perhaps
/// through a port-forward) gets `--request-timeout`, as API requests do; a drain's polls keep
/// the short default and retry instead.
pub(crate) fn redis_reader(
    url: &str,
    namespace: Option<&str>,
    reply_timeout: Option<&RequestTimeout>,
) -> Result<Reader, Error> {
    let mut settings = RedisSettings::new(url, UrlSource::Explicit);
    settings.namespace = namespace.map(str::to_owned);
    if let Some(RequestTimeout(limit)) = reply_timeout {
        // `--request-timeout 0` waits forever, here a day.
        settings.response_timeout = limit.unwrap_or(Duration::from_secs(24 * 3600));
    }
    settings.check()?;
    Ok(Reader::new(settings)?)
}

/// Every process in Redis, with its running jobs: `SMEMBERS processes`, then one pipeline of
/// every process hash and work hash.
pub(crate) async fn all_processes(reader: &Reader) -> Result<Vec<ProcessReport>, Error> {
    let clock = sidekiq_guard::redis::system_clock();
    let mut tracker = Tracker::new(Scope::All, Duration::from_secs(30));
    reader.refresh(&mut tracker, true, &clock).await?;
    Ok(report::processes(&tracker, clock()))
}

/// The probe's `/status` of a pod.
pub(crate) async fn probe_status(
    cluster: &Cluster,
    namespace: &str,
    pod: &str,
    port: u16,
) -> Result<Status, Error> {
    let answer = cluster
        .proxy(namespace, pod, port, "/status", cluster.probe_timeout())
        .await?;
    decode(answer, namespace, pod, port)
}

/// How many probes `validate` asks at once, as `status --concurrency` does by default.
pub(crate) const PROBE_CONCURRENCY: usize = 32;

/// The `/status` of each `(namespace, pod, port)`, at most `concurrency` at a time, in the order
/// given.
pub(crate) async fn probe_statuses(
    cluster: &Cluster,
    targets: Vec<(String, String, u16)>,
    concurrency: usize,
) -> Vec<Result<Status, Error>> {
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let count = targets.len();
    for (index, (namespace, pod, port)) in targets.into_iter().enumerate() {
        let (cluster, permits) = (cluster.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (index, probe_status(&cluster, &namespace, &pod, port).await)
        });
    }
    let mut answers: Vec<Option<Result<Status, Error>>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, answer)) = joined {
            answers[index] = Some(answer);
        }
    }
    answers
        .into_iter()
        .map(|answer| {
            answer.unwrap_or_else(|| Err(Error::Request("a probe read was cancelled".to_owned())))
        })
        .collect()
}

/// What the probe's `/drain` said.
#[derive(Debug)]
pub(crate) enum DrainAnswer {
    /// The drain it started or joined ended: drained (200), budget exhausted (504) or
    /// unquietable (409). The probe answers only then, so this is the request's own outcome.
    Ended(DrainReport),
    /// Not yet an outcome (503): the probe's drain still runs past the request's wait, or the
    /// probe does not answer at the moment (restarting, not ready); asking again may help.
    Pending(String),
}

/// Asks a pod's probe to drain (`/drain`, the call the preStop hook makes).
pub(crate) async fn probe_drain(
    cluster: &Cluster,
    namespace: &str,
    pod: &str,
    port: u16,
    timeout: Duration,
) -> Result<DrainAnswer, Error> {
    let answer = cluster
        .proxy(namespace, pod, port, "/drain", Some(timeout))
        .await?;
    let report = serde_json::from_slice::<DrainReport>(&answer.body).ok();
    match report {
        // The probe's report, with the status it answers it with: its outcome decides.
        Some(report) if report.http_status() == answer.status.as_u16() => {
            if report.drain_state().is_some_and(State::ended) {
                Ok(DrainAnswer::Ended(report))
            } else {
                Ok(DrainAnswer::Pending(format!(
                    "the probe's drain is still {}",
                    report.state
                )))
            }
        }
        None if answer.status == StatusCode::SERVICE_UNAVAILABLE => Ok(DrainAnswer::Pending(
            refusal(&answer, namespace, pod, port).to_string(),
        )),
        _ => Err(refusal(&answer, namespace, pod, port)),
    }
}

fn decode(answer: Proxied, namespace: &str, pod: &str, port: u16) -> Result<Status, Error> {
    if answer.status != StatusCode::OK {
        return Err(refusal(&answer, namespace, pod, port));
    }
    let decode_error = |source| Error::Decode {
        what: format!("the probe of pod {namespace}/{pod}"),
        source,
    };
    // A document of another schema may read as this one with fields that changed meaning, or
    // fail on one of them with an error that hides the real cause: its schema is said either
    // way (read alone, as a second look, only when the whole did not read).
    let schema = match serde_json::from_slice::<Status>(&answer.body) {
        Ok(status) if status.schema == report::SCHEMA => return Ok(status),
        Ok(status) => u64::from(status.schema),
        Err(error) => match serde_json::from_slice::<Schema>(&answer.body) {
            Ok(Schema { schema }) if schema != u64::from(report::SCHEMA) => schema,
            _ => return Err(decode_error(error)),
        },
    };
    Err(Error::ProbeSchema {
        pod: format!("{namespace}/{pod}"),
        schema,
    })
}

/// The one field of `/status` read before the rest.
#[derive(serde::Deserialize)]
struct Schema {
    schema: u64,
}

/// What an answer other than the expected one says, as an error naming the pod.
fn refusal(answer: &Proxied, namespace: &str, pod: &str, port: u16) -> Error {
    let body = String::from_utf8_lossy(&answer.body);
    let parsed = serde_json::from_str::<serde_json::Value>(&body).ok();
    // The API server's own errors (the pod is gone, the proxy is refused) come as a Status.
    let from_api = parsed
        .as_ref()
        .is_some_and(|v| v.get("kind").and_then(|k| k.as_str()) == Some("Status"));
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()))
        .unwrap_or(&body);
    let message = one_line(message);
    let code = answer.status.as_u16();
    let what = if message.contains("connection refused")
        || answer.status == StatusCode::SERVICE_UNAVAILABLE
    {
        format!("no sidekiq-guard probe answers on port {port} ({message})")
    } else if from_api {
        format!("the API server answered {code}: {message}")
    } else {
        format!("the probe answered {code}: {message}")
    };
    Error::Probe {
        pod: format!("{namespace}/{pod}"),
        message: what,
    }
}

/// An answer's text fit for one table cell: whitespace collapsed (an HTML error page spans many
/// lines), at most 200 characters.
fn one_line(text: &str) -> String {
    const LIMIT: usize = 200;
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match words.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}…", &words[..cut]),
        None => words,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_one_line_of_at_most_200_characters() {
        assert_eq!(
            one_line("<html>\n  <body>502 Bad Gateway</body>\n</html>\n"),
            "<html> <body>502 Bad Gateway</body> </html>"
        );
        let long = "é".repeat(300);
        assert_eq!(one_line(&long), format!("{}…", "é".repeat(200)));
    }
}
