//! Flags, each also read from `SIDEKIQ_GUARD_<FLAG>`, and what they resolve to.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use sidekiq_guard::Mode;
use sidekiq_guard::probe::health::Thresholds;
use sidekiq_guard::probe::pod;
use sidekiq_guard::redis::RedisSettings;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// The sidekiq-guard probe sidecar: liveness and readiness from Sidekiq's own heartbeat in Redis,
/// a /drain that quiets Sidekiq and waits for its jobs, /status and /metrics.
///
/// Redis is found as Sidekiq finds it: $REDIS_PROVIDER names the variable holding the URL, else
/// $REDIS_URL, else redis://localhost:6379/0.
#[derive(Debug, Parser)]
#[command(name = "sidekiq-guard-probe", version, args_override_self = true)]
pub(crate) struct Args {
    /// Address to serve /livez, /readyz, /drain, /status and /metrics on.
    #[arg(long, env = "SIDEKIQ_GUARD_LISTEN", default_value = "0.0.0.0:7434")]
    pub(crate) listen: SocketAddr,

    /// The host part of this pod's Sidekiq process identities ($DYNO when the Sidekiq container
    /// sets it). Default: the pod's hostname as the kernel reports it.
    #[arg(long, env = "SIDEKIQ_GUARD_HOSTNAME")]
    pub(crate) hostname: Option<String>,

    /// The pod's name (downward API); the fallback for the hostname and shown in /status.
    #[arg(long, env = "SIDEKIQ_GUARD_POD_NAME")]
    pub(crate) pod_name: Option<String>,

    /// The pod's namespace (downward API), shown in /status.
    #[arg(long, env = "SIDEKIQ_GUARD_POD_NAMESPACE")]
    pub(crate) pod_namespace: Option<String>,

    /// How long /drain waits for running jobs: quiet latency plus the longest job.
    #[arg(long, env = "SIDEKIQ_GUARD_DRAIN_BUDGET", default_value = "80s", value_parser = duration)]
    pub(crate) drain_budget: Duration,

    /// How the sidecar is placed, which decides what SIGTERM means. native (an init container
    /// stopped after Sidekiq has exited): exit promptly. classic (a regular container signalled
    /// with Sidekiq, while the preStop /drain may still run): keep serving until this pod's
    /// Sidekiq has left Redis, or the exit deadline.
    #[arg(long, env = "SIDEKIQ_GUARD_MODE", default_value = "classic", value_name = "native|classic", value_parser = mode)]
    pub(crate) mode: Mode,

    /// /livez fails when a heartbeat of this pod is older than this while Redis answers.
    #[arg(long, env = "SIDEKIQ_GUARD_STALE_AFTER", default_value = "60s", value_parser = duration)]
    pub(crate) stale_after: Duration,

    /// /livez fails when Redis has been unreachable for longer than this.
    #[arg(long, env = "SIDEKIQ_GUARD_OUTAGE_WINDOW", default_value = "120s", value_parser = duration)]
    pub(crate) outage_window: Duration,

    /// The redis-namespace prefix of Sidekiq's keys (Sidekiq 6 with `namespace:`).
    #[arg(long, env = "SIDEKIQ_GUARD_REDIS_NAMESPACE")]
    pub(crate) redis_namespace: Option<String>,

    /// For rediss:// URLs: accept the server's certificate unverified (self-signed servers such
    /// as Heroku Redis, where Sidekiq is configured with `verify_mode: VERIFY_NONE`). A private CA
    /// is better given with SSL_CERT_FILE (which replaces the system's store: put the public
    /// CAs in it too where they are needed).
    #[arg(
        long,
        env = "SIDEKIQ_GUARD_REDIS_TLS_INSECURE",
        value_name = "BOOL",
        num_args = 0..=1,
        default_value = "false",
        default_missing_value = "true",
        value_parser = boolish
    )]
    pub(crate) redis_tls_insecure: bool,

    /// Limit on connecting to Redis.
    #[arg(long, env = "SIDEKIQ_GUARD_CONNECT_TIMEOUT", default_value = "2s", value_parser = duration)]
    pub(crate) connect_timeout: Duration,

    /// Limit on one Redis round trip.
    #[arg(long, env = "SIDEKIQ_GUARD_READ_TIMEOUT", default_value = "2s", value_parser = duration)]
    pub(crate) read_timeout: Duration,

    /// How long a probe waits for a fresh read before answering from the last one (keep it
    /// under the kubelet's probe timeout, 1 s by default).
    #[arg(long, env = "SIDEKIQ_GUARD_ANSWER_TIMEOUT", default_value = "800ms", value_parser = duration)]
    pub(crate) answer_timeout: Duration,

    /// A read younger than this answers a probe without reading Redis again.
    #[arg(long, env = "SIDEKIQ_GUARD_REFRESH_AFTER", default_value = "1s", value_parser = duration)]
    pub(crate) refresh_after: Duration,

    /// How often a running drain reads Redis.
    #[arg(long, env = "SIDEKIQ_GUARD_DRAIN_POLL", default_value = "500ms", value_parser = duration)]
    pub(crate) drain_poll: Duration,

    /// How often to list the `processes` set for new processes of this pod, besides when one
    /// leaves, expires or is late, and when a drain starts.
    #[arg(long, env = "SIDEKIQ_GUARD_REDISCOVER", default_value = "5m", value_parser = duration)]
    pub(crate) rediscover: Duration,

    /// After a new process of this pod turns up, list the `processes` set on every read for
    /// this long: a swarm's children, or a second Sidekiq of the pod, start seconds apart.
    #[arg(long, env = "SIDEKIQ_GUARD_SETTLE", default_value = "30s", value_parser = duration)]
    pub(crate) settle: Duration,

    /// Classic mode: longest wait after SIGTERM for Sidekiq to leave Redis. Default: the drain
    /// budget plus 30 s (Sidekiq's default -t of 25 s and 5 s to exit).
    #[arg(long, env = "SIDEKIQ_GUARD_EXIT_DEADLINE", value_parser = duration)]
    pub(crate) exit_deadline: Option<Duration>,

    /// Log format.
    #[arg(long, env = "SIDEKIQ_GUARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub(crate) log_format: LogFormat,

    /// Most verbose level logged: error, warn, info, debug or trace.
    #[arg(long, env = "SIDEKIQ_GUARD_LOG_LEVEL", default_value = "info")]
    pub(crate) log_level: tracing::Level,
}

/// The core's sidecar [`Mode`] by its name.
fn mode(text: &str) -> Result<Mode, String> {
    [Mode::Native, Mode::Classic]
        .into_iter()
        .find(|mode| mode.as_str() == text)
        .ok_or_else(|| format!("expected native or classic, got {text:?}"))
}

/// A duration as `90s`, `5m20s`, `800ms`, or a bare number of seconds.
fn duration(text: &str) -> Result<Duration, String> {
    sidekiq_guard::duration::parse(text).map_err(|e| e.to_string())
}

/// Where the hostname came from, for the start-up log.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HostnameSource {
    Flag,
    Kernel,
    Environment,
    PodName,
}

impl HostnameSource {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            HostnameSource::Flag => "--hostname",
            HostnameSource::Kernel => "kernel",
            HostnameSource::Environment => "$HOSTNAME",
            HostnameSource::PodName => "pod name",
        }
    }
}

/// Everything the probe runs with.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) listen: SocketAddr,
    pub(crate) hostname: String,
    pub(crate) hostname_source: HostnameSource,
    pub(crate) pod_name: Option<String>,
    pub(crate) pod_namespace: Option<String>,
    pub(crate) drain_budget: Duration,
    pub(crate) mode: Mode,
    pub(crate) thresholds: Thresholds,
    pub(crate) redis: RedisSettings,
    pub(crate) answer_timeout: Duration,
    pub(crate) refresh_after: Duration,
    pub(crate) drain_poll: Duration,
    pub(crate) rediscover: Duration,
    pub(crate) settle: Duration,
    pub(crate) exit_deadline: Duration,
}

impl Settings {
    /// Resolves the arguments against the environment.
    pub(crate) fn resolve(args: &Args) -> anyhow::Result<Self> {
        let (hostname, hostname_source) = resolve_hostname(args)?;
        let mut redis = RedisSettings::from_env().context("Redis settings")?;
        redis.namespace = args.redis_namespace.clone().filter(|ns| !ns.is_empty());
        redis.connect_timeout = args.connect_timeout;
        redis.response_timeout = args.read_timeout;
        redis.tls_insecure = args.redis_tls_insecure;
        if args.stale_after.is_zero() || args.outage_window.is_zero() {
            bail!("--stale-after and --outage-window must be longer than zero");
        }
        if args.drain_poll.is_zero() || args.refresh_after.is_zero() {
            bail!("--drain-poll and --refresh-after must be longer than zero");
        }
        if args.connect_timeout.is_zero() || args.read_timeout.is_zero() {
            bail!(
                "--connect-timeout and --read-timeout must be longer than zero: every read would fail"
            );
        }
        Ok(Settings {
            listen: args.listen,
            hostname,
            hostname_source,
            pod_name: args.pod_name.clone().filter(|s| !s.is_empty()),
            pod_namespace: args.pod_namespace.clone().filter(|s| !s.is_empty()),
            drain_budget: args.drain_budget,
            mode: args.mode,
            thresholds: Thresholds {
                stale_after: args.stale_after,
                outage_window: args.outage_window,
            },
            redis,
            answer_timeout: args.answer_timeout,
            refresh_after: args.refresh_after,
            drain_poll: args.drain_poll,
            rediscover: args.rediscover,
            settle: args.settle,
            // The grace formula after the drain, at Sidekiq's default -t.
            exit_deadline: args.exit_deadline.unwrap_or_else(|| {
                Duration::from_secs(sidekiq_guard::grace::after_sigterm(
                    // Whole seconds, rounded up: the deadline must not fall short.
                    args.drain_budget.as_secs() + u64::from(args.drain_budget.subsec_nanos() > 0),
                    sidekiq_guard::sidekiq::DEFAULT_TIMEOUT_SECS,
                ))
            }),
        })
    }
}

/// The flag; else the kernel's hostname, which is the one Sidekiq reads in the same pod; else
/// `$HOSTNAME`; else the pod name as the kubelet would cut it.
fn resolve_hostname(args: &Args) -> anyhow::Result<(String, HostnameSource)> {
    let clean = |s: String| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    // As given: it comes from `DYNO`, which Sidekiq puts in its identity untrimmed (a value
    // from a Secret made with `--from-file` ends in a newline, and so does the identity).
    if let Some(name) = args.hostname.clone().filter(|name| !name.is_empty()) {
        return Ok((name, HostnameSource::Flag));
    }
    if let Some(name) = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .and_then(clean)
    {
        return Ok((name, HostnameSource::Kernel));
    }
    if let Some(name) = std::env::var("HOSTNAME").ok().and_then(clean) {
        return Ok((name, HostnameSource::Environment));
    }
    if let Some(name) = args
        .pod_name
        .as_deref()
        .and_then(|pod| pod::pod_hostname(pod, None))
    {
        return Ok((name, HostnameSource::PodName));
    }
    bail!("cannot tell this pod's hostname: set --hostname (SIDEKIQ_GUARD_HOSTNAME)")
}

/// A yes/no setting as environment variables write it: `true`, `1`, `yes`, `on` (any case) or
/// `false`, `0`, `no`, `off` and the empty string. A manifest's `value: "1"` must not stop the
/// sidecar from starting.
fn boolish(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" | "on" => Ok(true),
        "false" | "0" | "no" | "n" | "off" | "" => Ok(false),
        _ => Err(format!(
            "{text:?} is not a yes or no: expected true, false, 1, 0, yes, no, y, n, on or off"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_what_the_webhook_writes() {
        assert_eq!(duration("5m20s"), Ok(Duration::from_secs(320)));
        assert_eq!(duration("800ms"), Ok(Duration::from_millis(800)));
        assert_eq!(duration("90"), Ok(Duration::from_secs(90)));
        assert!(
            duration("soon")
                .unwrap_err()
                .contains("expected a number of seconds")
        );
    }

    #[test]
    fn a_hostname_flag_is_taken_as_sidekiq_takes_dyno() {
        let resolve = |extra: &[&str]| {
            let args = Args::try_parse_from(["sidekiq-guard-probe"].iter().chain(extra)).unwrap();
            resolve_hostname(&args).unwrap()
        };
        let (name, source) = resolve(&["--hostname", "worker-1\n"]);
        assert_eq!(name, "worker-1\n");
        assert!(matches!(source, HostnameSource::Flag));
        // An empty one falls back to the kernel's.
        let (name, source) = resolve(&["--hostname", ""]);
        assert!(!name.is_empty());
        assert!(!matches!(source, HostnameSource::Flag));
    }

    #[test]
    fn the_tls_insecure_switch_reads_as_manifests_write_it() {
        let parse = |extra: &[&str]| {
            Args::try_parse_from(["sidekiq-guard-probe"].iter().chain(extra))
                .map(|a| a.redis_tls_insecure)
        };
        assert!(!parse(&[]).unwrap());
        assert!(parse(&["--redis-tls-insecure"]).unwrap());
        for (value, expected) in [
            ("1", true),
            ("Yes", true),
            ("on", true),
            ("0", false),
            ("no", false),
            ("", false),
        ] {
            assert_eq!(
                parse(&[&format!("--redis-tls-insecure={value}")]).unwrap(),
                expected,
                "{value:?}"
            );
        }
        let err = parse(&["--redis-tls-insecure=maybe"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected true, false, 1, 0, yes, no, y, n, on or off"),
            "{err}"
        );
    }

    /// The flags' defaults are written as text for `--help`; they must stay the core's values,
    /// so that a probe started by hand behaves like one the webhook injects for a pod that
    /// declares nothing.
    #[test]
    fn defaults_are_the_cores() {
        let args = Args::try_parse_from(["sidekiq-guard-probe"]).unwrap();
        assert_eq!(args.listen.port(), sidekiq_guard::DEFAULT_PROBE_PORT);
        let defaults = sidekiq_guard::policy::Defaults::default();
        assert_eq!(
            args.drain_budget,
            Duration::from_secs(defaults.quiet_latency.0 + defaults.longest_job.0)
        );
        assert_eq!(
            Thresholds {
                stale_after: args.stale_after,
                outage_window: args.outage_window,
            },
            Thresholds::default()
        );
    }

    #[test]
    fn the_webhooks_arguments_parse() {
        let args = Args::try_parse_from([
            "sidekiq-guard-probe",
            "--listen=0.0.0.0:7434",
            "--drain-budget=5m20s",
            "--mode=native",
        ])
        .unwrap();
        assert_eq!(args.drain_budget, Duration::from_secs(320));
        assert_eq!(args.mode, Mode::Native);
        assert_eq!(args.stale_after, Duration::from_secs(60));
        assert_eq!(args.outage_window, Duration::from_secs(120));

        let args = Args::try_parse_from([
            "sidekiq-guard-probe",
            "--listen=0.0.0.0:7434",
            "--drain-budget=1m20s",
            "--mode=classic",
            "--exit-deadline=1m50s",
        ])
        .unwrap();
        assert_eq!(args.mode, Mode::Classic);
        assert_eq!(args.exit_deadline, Some(Duration::from_secs(110)));

        let err = Args::try_parse_from(["sidekiq-guard-probe", "--mode=sideways"]).unwrap_err();
        assert!(
            err.to_string()
                .contains("expected native or classic, got \"sideways\""),
            "{err}"
        );
    }
}
