//! The async reader of Sidekiq's records in Redis (feature `redis`), shared by the probe and
//! `kubectl sidekiq status --redis-url`.
//!
//! - [`RedisSettings`] finds the Redis URL exactly as Sidekiq does (`REDIS_PROVIDER` naming the
//!   variable, else `REDIS_URL`, else `redis://localhost:6379/0`) and never shows its password.
//! - [`Reader`] keeps one multiplexed connection, reconnects with exponential backoff after a
//!   failure, bounds every connect and every reply with a timeout, and reads with pipelines:
//!   [`Reader::refresh`] brings a [`Tracker`] up to date in **one round trip** when the set of
//!   processes is unchanged and two when `SMEMBERS processes` revealed new ones (their
//!   identities are needed before their hashes can be read); see [`crate::probe::observe`].
//! - [`Reader::quiet`] pushes `TSTP` exactly as Sidekiq's Web UI does: `MULTI`, `LPUSH
//!   <id>-signals TSTP`, `EXPIRE <id>-signals 60`, `EXEC`.
//!
//! `rediss://` URLs use rustls with the ring provider (installed on first use) and the system's
//! certificate store (`SSL_CERT_FILE`/`SSL_CERT_DIR` replace it, with a private CA's bundle say).
//! [`RedisSettings::tls_insecure`] (or a `#insecure` URL fragment) skips certificate
//! verification for self-signed servers such as Heroku Redis — the equivalent of Sidekiq's
//! `ssl_params: {verify_mode: OpenSSL::SSL::VERIFY_NONE}`, which lives in Ruby code, not in the
//! URL the probe copies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, IntoConnectionInfo, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::errors;
use crate::probe::Now;
use crate::probe::observe::{Fetched, Fields, RawProcess, ReadPlan, ReplyError, Tracker};
use crate::sidekiq::records::{Keys, QUIET_SIGNAL, SIGNAL_TTL_SECS};

/// `Reader::execution_times`: Sidekiq 7+'s execution metrics.
mod metrics;

/// Sidekiq's (redis-rb's) default when no variable names a URL.
pub const DEFAULT_URL: &str = "redis://localhost:6379/0";
pub use crate::sidekiq::{REDIS_PROVIDER, REDIS_URL};

/// Where the Redis URL came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlSource {
    /// `$REDIS_URL`.
    RedisUrl,
    /// The variable `$REDIS_PROVIDER` names.
    Provider(String),
    /// Given explicitly (a flag).
    Explicit,
    /// Nothing set: Sidekiq's default.
    Default,
}

impl std::fmt::Display for UrlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UrlSource::RedisUrl => write!(f, "${REDIS_URL}"),
            UrlSource::Provider(var) => write!(f, "${var} (named by ${REDIS_PROVIDER})"),
            UrlSource::Explicit => f.write_str("the command line"),
            UrlSource::Default => f.write_str("Sidekiq's default"),
        }
    }
}

/// Redis settings that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// `REDIS_PROVIDER` holds a URL, which Sidekiq itself refuses.
    #[error(
        "{REDIS_PROVIDER} holds a URL ({value}); like Sidekiq, sidekiq-guard expects the name of the variable that holds the URL, e.g. {REDIS_PROVIDER}=REDISTOGO_URL"
    )]
    ProviderIsUrl {
        /// The value, redacted.
        value: String,
    },
    /// The URL does not parse.
    #[error(
        "invalid Redis URL {url} (from {source_var}): {reason}; expected redis://[[user]:password@]host[:port][/db], or rediss://… for TLS"
    )]
    InvalidUrl {
        /// The URL, redacted.
        url: String,
        /// Where it came from.
        source_var: String,
        /// What is wrong.
        reason: String,
    },
}

/// How to reach Redis. `Debug` and every message show the URL redacted.
#[derive(Clone)]
pub struct RedisSettings {
    url: String,
    /// Where the URL came from.
    pub source: UrlSource,
    /// The redis-namespace prefix of Sidekiq's keys (6.x with `namespace:`), if any.
    pub namespace: Option<String>,
    /// Limit on establishing a connection (TCP, TLS, AUTH, SELECT).
    pub connect_timeout: Duration,
    /// Limit on waiting for the replies of one pipeline.
    pub response_timeout: Duration,
    /// Longest wait between reconnection attempts (the wait doubles from 100 ms).
    pub max_backoff: Duration,
    /// For `rediss://`: accept any server certificate. Only for servers with self-signed
    /// certificates that the app itself does not verify either.
    pub tls_insecure: bool,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &self.redacted_url())
            .field("source", &self.source)
            .field("namespace", &self.namespace)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("max_backoff", &self.max_backoff)
            .field("tls_insecure", &self.tls_insecure)
            .finish()
    }
}

impl RedisSettings {
    /// Settings for `url` with default timeouts (2 s connect, 2 s reply, 2 s longest backoff).
    pub fn new(url: impl Into<String>, source: UrlSource) -> Self {
        RedisSettings {
            url: url.into(),
            source,
            namespace: None,
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
            max_backoff: Duration::from_secs(2),
            tls_insecure: false,
        }
    }

    /// Finds the URL in the process environment the way Sidekiq does; see
    /// [`RedisSettings::from_lookup`].
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Finds the URL the way Sidekiq 7/8 do (`RedisConnection.determine_redis_provider`): the
    /// variable `REDIS_PROVIDER` names, else `REDIS_URL`, else [`DEFAULT_URL`]. A
    /// `REDIS_PROVIDER` that holds a URL is an error, as in Sidekiq. (6.x reads the named
    /// variable alone, but its client, redis-rb, falls back to `REDIS_URL` when given no URL:
    /// the same result.)
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let provider = lookup(REDIS_PROVIDER);
        if let Some(provider) = &provider
            && crate::sidekiq::provider_holds_url(provider)
        {
            return Err(SettingsError::ProviderIsUrl {
                value: redact_url(provider),
            });
        }
        let from_provider = provider
            .filter(|name| !name.is_empty())
            .and_then(|name| lookup(&name).map(|url| (url, UrlSource::Provider(name))));
        let (url, source) = match from_provider {
            Some(found) => found,
            None => match lookup(REDIS_URL) {
                Some(url) => (url, UrlSource::RedisUrl),
                None => (DEFAULT_URL.to_owned(), UrlSource::Default),
            },
        };
        let settings = RedisSettings::new(url, source);
        settings.check()?;
        Ok(settings)
    }

    /// Checks that the URL parses, without connecting.
    pub fn check(&self) -> Result<(), SettingsError> {
        self.url
            .as_str()
            .into_connection_info()
            .map(|_| ())
            .map_err(|e| SettingsError::InvalidUrl {
                url: self.redacted_url(),
                source_var: self.source.to_string(),
                // redis-rs's messages describe the problem, never the URL's contents.
                reason: e.to_string(),
            })
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

/// A Redis URL fit for logs: the password (or a lone user-info part, which some clients read
/// as a password) becomes `***`. Text that is not a URL is not shown at all.
///
/// Everything up to the *last* `@` counts as user info, even past a `/`, `?` or `#`: a
/// generated password often holds those unescaped, which makes the URL invalid — and an
/// invalid URL is exactly the one an error message quotes. Hiding a little too much of an odd
/// URL is the safe side.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return format!("<not a URL, {} characters>", url.chars().count());
    };
    match rest.rsplit_once('@') {
        None => format!("{scheme}://{}", redact_query(rest)),
        // An `@` after a query's `=` may be inside a query value (`?password=p@ss`): what
        // follows it is no host, and may be the rest of a secret.
        Some((userinfo, _)) if userinfo.contains('=') => format!("{scheme}://***"),
        Some((userinfo, host_and_tail)) => {
            let userinfo = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => "***".to_owned(),
            };
            format!("{scheme}://{userinfo}@{}", redact_query(host_and_tail))
        }
    }
}

/// The URL as Sidekiq's Redis clients read it, rewritten for redis-rs where the two differ:
/// - a lone user-info part (`redis://s3cret@host`) is the *password* for redis-client
///   (Sidekiq 7+), while redis-rs would send it as a user name: `redis://:s3cret@host`;
/// - a `+` in the password is a space for both of Sidekiq's clients (they decode it as a form
///   component), a `+` for redis-rs: `%20` (redis-client takes the user name as written);
/// - `?db=N` names the database when the path does not, for redis-client (Sidekiq 7+), which
///   redis-rs ignores: `/N`.
fn as_sidekiq_reads_it(url: &str) -> String {
    let url = with_query_db(url);
    match user_info(&url) {
        Some((scheme, userinfo, host)) if !userinfo.is_empty() => {
            // A lone user-info part is the password.
            let (user, password) = userinfo.split_once(':').unwrap_or(("", userinfo));
            let password = password.replace('+', "%20");
            format!("{scheme}://{user}:{password}@{host}")
        }
        _ => url,
    }
}

/// `redis://h:6379?db=2` as `redis://h:6379/2?db=2`: the query's database where the path
/// names none (TCP URLs; a socket's database is always in its query, which redis-rs reads).
/// A fragment after the query (`#insecure`, which redis-rs reads too) is kept, and not read as
/// part of the database's number.
fn with_query_db(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    if !matches!(scheme, "redis" | "rediss") {
        return url.to_owned();
    }
    let Some((base, query)) = rest.split_once('?') else {
        return url.to_owned();
    };
    let fragment_at = query.find('#').unwrap_or(query.len());
    let (query, fragment) = query.split_at(fragment_at);
    let authority_end = base.find('/').unwrap_or(base.len());
    let (authority, path) = base.split_at(authority_end);
    let db = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "db")
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()));
    match db {
        Some(db) if path.is_empty() || path == "/" => {
            format!("{scheme}://{authority}/{db}?{query}{fragment}")
        }
        _ => url.to_owned(),
    }
}

/// What to try when Redis refuses the credentials of `url` (the URL as given), the way Sidekiq
/// 6's client (redis-rb) connects: `redis://app:pw@host` → `redis://:pw@host` (`AUTH app pw`
/// refused by a Redis without ACL users is retried with the password alone), and a lone
/// user-info part, which redis-rb sends no `AUTH` for, → no credentials at all.
fn fallback(url: &str) -> Option<String> {
    let (scheme, userinfo, host) = user_info(url)?;
    match userinfo.split_once(':') {
        None if !userinfo.is_empty() => Some(format!("{scheme}://{host}")),
        Some((user, password)) if !user.is_empty() => {
            Some(format!("{scheme}://:{password}@{host}"))
        }
        _ => None,
    }
}

/// Whether connecting failed on the credentials: refused (`WRONGPASS`), or given to a Redis
/// that has no password (`AUTH <password> called without any password configured`).
fn credentials_refused(error: &redis::RedisError) -> bool {
    error.kind() == redis::ErrorKind::AuthenticationFailed
        || error
            .to_string()
            .contains("without any password configured")
}

/// `(scheme, user info, rest)` of a URL whose user info is plainly delimited: none of `/?#=&`
/// before its last `@`, which would make that `@` part of a path or query instead.
fn user_info(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let (userinfo, host) = rest.rsplit_once('@')?;
    (!userinfo.contains(['/', '?', '#', '=', '&'])).then_some((scheme, userinfo, host))
}

/// Hides the credentials redis-rs also reads from the query (`unix:///s.sock?pass=…`,
/// `redis://h/0?password=…`).
fn redact_query(host_and_tail: &str) -> String {
    let Some((path, query)) = host_and_tail.split_once('?') else {
        return host_and_tail.to_owned();
    };
    // Every value but the database and protocol is hidden: a key may be percent-encoded
    // (`p%61ss=`), which the Redis client decodes, so matching names like `pass` is not enough.
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, value))
                if ["db", "protocol"].contains(&key.to_ascii_lowercase().as_str()) =>
            {
                format!("{key}={value}")
            }
            Some((key, _)) => format!("{key}=***"),
            None => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

/// The system's clocks as [`Now`] for [`Reader::refresh`]: wall-clock time, and monotonic time
/// since this call.
pub fn system_clock() -> impl Fn() -> Now + Clone + Send + Sync + 'static {
    let origin = std::time::Instant::now();
    move || Now {
        wall: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
        mono: origin.elapsed(),
    }
}

/// Installs ring as rustls's process-wide crypto provider, unless one is installed already.
/// redis-rs's rustls has no provider of its own; [`Reader::new`] calls this for `rediss://`.
pub fn install_tls_provider() {
    // An error means a provider is already installed, which is just as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A failed Redis operation. Messages name the redacted URL and never contain a password.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The URL does not parse.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// Connecting (TCP, TLS, AUTH or SELECT) failed.
    #[error("cannot connect to Redis at {url}")]
    Connect {
        /// The redacted URL.
        url: String,
        /// What failed.
        #[source]
        source: redis::RedisError,
    },
    /// Connecting or a reply took longer than the timeout.
    #[error("Redis at {url} did not answer within {}", crate::probe::dur(*timeout))]
    Timeout {
        /// The redacted URL.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
    /// A pipeline failed as a whole (connection lost, protocol error).
    #[error("reading from Redis at {url} failed")]
    Command {
        /// The redacted URL.
        url: String,
        /// What failed.
        #[source]
        source: redis::RedisError,
    },
    /// Pushing a signal failed (a `WRONGTYPE` signals key, a read-only replica…).
    #[error("pushing TSTP to {key} at {url} failed")]
    Push {
        /// The signals key.
        key: String,
        /// The redacted URL.
        url: String,
        /// What failed.
        #[source]
        source: redis::RedisError,
    },
    /// The last attempts failed and the next one is not due yet.
    #[error("Redis at {url} is unreachable; next attempt in {retry_in:?}, last error: {last}")]
    Backoff {
        /// The redacted URL.
        url: String,
        /// Until the next attempt.
        retry_in: Duration,
        /// The last error, as text.
        last: String,
    },
    /// Redis answered with something no command of the pipeline returns.
    #[error("unexpected reply from Redis at {url} to {command}: {detail}")]
    Protocol {
        /// The redacted URL.
        url: String,
        /// The command.
        command: String,
        /// What came back.
        detail: String,
    },
}

/// Counters of what a reader sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Pipelines (round trips) sent, including signal pushes.
    pub round_trips: u64,
    /// Commands sent (a `MULTI … EXEC` counts its `MULTI` and `EXEC`).
    pub commands: u64,
    /// Connections established.
    pub connects: u64,
}

/// What one [`Reader::refresh`] cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refresh {
    /// Round trips: 1, or 2 when new processes were found.
    pub round_trips: u32,
    /// Commands sent.
    pub commands: usize,
}

#[derive(Default)]
struct Link {
    connection: Option<MultiplexedConnection>,
    /// The fallback credentials were accepted where the first ones were refused.
    fallback: bool,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<String>,
}

/// Reads Sidekiq's records from one Redis; see the module documentation.
pub struct Reader {
    client: redis::Client,
    /// The credentials Sidekiq 6's client would use instead (see [`fallback`]), tried when
    /// Redis refuses the first ones.
    fallback: Option<redis::Client>,
    settings: RedisSettings,
    keys: Keys,
    link: Mutex<Link>,
    round_trips: AtomicU64,
    commands: AtomicU64,
    connects: AtomicU64,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A client for `url` (the settings' URL as Sidekiq reads it) with the settings' TLS choice.
fn client_for(url: &str, settings: &RedisSettings) -> Result<redis::Client, RedisError> {
    let info = url
        .into_connection_info()
        .map_err(|e| RedisError::Connect {
            url: settings.redacted_url(),
            source: e,
        })?;
    // `CLIENT SETINFO` on every connect adds two commands the probe does not need.
    let redis_info = info.redis_settings().clone().set_skip_set_lib_name();
    let mut info = info.set_redis_settings(redis_info);
    if let redis::ConnectionAddr::TcpTls {
        host,
        port,
        insecure,
        tls_params,
    } = info.addr().clone()
    {
        install_tls_provider();
        if settings.tls_insecure && !insecure {
            info = info.set_addr(redis::ConnectionAddr::TcpTls {
                host,
                port,
                insecure: true,
                tls_params,
            });
        }
    }
    redis::Client::open(info).map_err(|e| RedisError::Connect {
        url: settings.redacted_url(),
        source: e,
    })
}

impl Reader {
    /// A reader for `settings`; connects lazily, on the first read.
    pub fn new(settings: RedisSettings) -> Result<Self, RedisError> {
        settings.check()?;
        let client = client_for(&as_sidekiq_reads_it(&settings.url), &settings)?;
        // A fallback that does not parse is no reason to refuse the URL itself.
        let fallback = fallback(&settings.url)
            .and_then(|url| client_for(&as_sidekiq_reads_it(&url), &settings).ok());
        Ok(Reader {
            client,
            fallback,
            keys: Keys::new(settings.namespace.as_deref()),
            settings,
            link: Mutex::new(Link::default()),
            round_trips: AtomicU64::new(0),
            commands: AtomicU64::new(0),
            connects: AtomicU64::new(0),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    /// Sidekiq's key names under the configured namespace.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// What the reader has sent so far.
    pub fn stats(&self) -> Stats {
        Stats {
            round_trips: self.round_trips.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
            connects: self.connects.load(Ordering::Relaxed),
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(16);
        Duration::from_millis(100)
            .saturating_mul(1 << exp)
            .min(self.settings.max_backoff)
    }

    /// One connection attempt with `client`, bounded by the connect timeout (which also
    /// bounds DNS resolution).
    async fn attempt(
        &self,
        client: &redis::Client,
    ) -> Result<redis::RedisResult<MultiplexedConnection>, tokio::time::error::Elapsed> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.settings.connect_timeout))
            .set_response_timeout(Some(self.settings.response_timeout));
        tokio::time::timeout(
            self.settings.connect_timeout + Duration::from_millis(100),
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
    }

    async fn connection(&self) -> Result<MultiplexedConnection, RedisError> {
        let mut link = self.link.lock().await;
        if let Some(connection) = &link.connection {
            return Ok(connection.clone());
        }
        let now = Instant::now();
        if let Some(retry_at) = link.retry_at
            && retry_at > now
        {
            return Err(RedisError::Backoff {
                url: self.settings.redacted_url(),
                retry_in: retry_at - now,
                last: link.last_error.clone().unwrap_or_default(),
            });
        }
        let client = match (&self.fallback, link.fallback) {
            (Some(fallback), true) => fallback,
            _ => &self.client,
        };
        let mut attempt = self.attempt(client).await;
        if let (Some(fallback), Ok(Err(refused))) = (&self.fallback, &attempt)
            && !link.fallback
            && credentials_refused(refused)
        {
            attempt = self.attempt(fallback).await;
            link.fallback = matches!(attempt, Ok(Ok(_)));
        }
        let error = match attempt {
            Ok(Ok(connection)) => {
                self.connects.fetch_add(1, Ordering::Relaxed);
                link.failures = 0;
                link.retry_at = None;
                link.last_error = None;
                link.connection = Some(connection.clone());
                return Ok(connection);
            }
            Ok(Err(e)) if e.is_timeout() => RedisError::Timeout {
                url: self.settings.redacted_url(),
                timeout: self.settings.connect_timeout,
            },
            Ok(Err(e)) => RedisError::Connect {
                url: self.settings.redacted_url(),
                source: e,
            },
            Err(_) => RedisError::Timeout {
                url: self.settings.redacted_url(),
                timeout: self.settings.connect_timeout,
            },
        };
        link.failures = link.failures.saturating_add(1);
        link.retry_at = Some(now + self.backoff(link.failures));
        link.last_error = Some(errors::chain(&error));
        Err(error)
    }

    /// Forgets the connection after a failure: the next call reconnects at once (the backoff
    /// applies to failed connects, not to the first attempt after a broken connection).
    async fn drop_connection(&self, error: &RedisError) {
        let mut link = self.link.lock().await;
        link.connection = None;
        link.last_error = Some(errors::chain(error));
    }

    /// Sends `pipe` and returns its reply. A connection Redis closed while it was idle (a
    /// restart, a failover, an idle timeout) fails on its next use: then one fresh connection
    /// is tried at once, so a Redis that is back is not reported away until the next read.
    async fn query(&self, pipe: &redis::Pipeline, commands: usize) -> Result<Value, RedisError> {
        match self.query_once(pipe, commands).await {
            Err(RedisError::Command { source, .. }) if source.is_connection_dropped() => {
                self.query_once(pipe, commands).await
            }
            other => other,
        }
    }

    async fn query_once(
        &self,
        pipe: &redis::Pipeline,
        commands: usize,
    ) -> Result<Value, RedisError> {
        let mut connection = self.connection().await?;
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        self.commands.fetch_add(
            u64::try_from(commands).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let result = tokio::time::timeout(
            self.settings.response_timeout + Duration::from_millis(100),
            pipe.query_async::<Value>(&mut connection),
        )
        .await;
        let error = match result {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) if e.is_timeout() => RedisError::Timeout {
                url: self.settings.redacted_url(),
                timeout: self.settings.response_timeout,
            },
            Ok(Err(e)) => RedisError::Command {
                url: self.settings.redacted_url(),
                source: e,
            },
            Err(_) => RedisError::Timeout {
                url: self.settings.redacted_url(),
                timeout: self.settings.response_timeout,
            },
        };
        // A multiplexed connection that timed out may deliver late replies; never reuse it.
        self.drop_connection(&error).await;
        Err(error)
    }

    /// Sends `plan` as one pipeline and returns the replies. An error reply to one command
    /// (e.g. `WRONGTYPE`) belongs to that process; only a failure of the whole pipeline is an
    /// error here.
    pub async fn fetch(&self, plan: &ReadPlan) -> Result<Fetched, RedisError> {
        if plan.is_empty() {
            return Ok(Fetched {
                members: None,
                processes: Vec::new(),
            });
        }
        let processes_key = self.keys.processes();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        if plan.members {
            pipe.cmd("SMEMBERS").arg(&processes_key);
        }
        for read in &plan.processes {
            pipe.cmd("SISMEMBER")
                .arg(&processes_key)
                .arg(&read.identity);
            pipe.cmd("HGETALL").arg(self.keys.process(&read.identity));
            for key in read.work {
                pipe.cmd("HGETALL")
                    .arg(self.keys.work(&read.identity, *key));
            }
        }
        let reply = self.query(&pipe, plan.commands()).await?;
        let mut replies = match reply {
            Value::Array(items) => items.into_iter(),
            other => return Err(self.protocol("the pipeline", &other)),
        };
        let mut next = |command: &str| {
            replies.next().ok_or_else(|| RedisError::Protocol {
                url: self.settings.redacted_url(),
                command: command.to_owned(),
                detail: "missing reply".to_owned(),
            })
        };
        let members = if plan.members {
            match next("SMEMBERS")? {
                Value::Array(items) | Value::Set(items) => Some(
                    items
                        .into_iter()
                        .filter_map(|item| {
                            bytes(item).map(|b| String::from_utf8_lossy(&b).into_owned())
                        })
                        .collect(),
                ),
                Value::ServerError(e) => {
                    return Err(RedisError::Protocol {
                        url: self.settings.redacted_url(),
                        command: format!("SMEMBERS {processes_key}"),
                        detail: server_error(&e),
                    });
                }
                other => return Err(self.protocol("SMEMBERS", &other)),
            }
        } else {
            None
        };
        let mut processes = Vec::with_capacity(plan.processes.len());
        for read in &plan.processes {
            let member = match next("SISMEMBER")? {
                Value::Int(n) => Ok(n == 1),
                Value::Boolean(b) => Ok(b),
                Value::ServerError(e) => Err(ReplyError {
                    key: processes_key.clone(),
                    message: server_error(&e),
                }),
                other => return Err(self.protocol("SISMEMBER", &other)),
            };
            let hash = self.hash(next("HGETALL")?, &self.keys.process(&read.identity))?;
            let mut work = Vec::with_capacity(read.work.len());
            for key in read.work {
                let name = self.keys.work(&read.identity, *key);
                work.push((*key, self.hash(next("HGETALL")?, &name)?));
            }
            processes.push(RawProcess {
                identity: read.identity.clone(),
                member,
                hash,
                work,
            });
        }
        Ok(Fetched { members, processes })
    }

    fn hash(&self, value: Value, key: &str) -> Result<Result<Fields, ReplyError>, RedisError> {
        match value {
            // RESP2: a flat array of field, value, field, value…
            Value::Array(items) => {
                let mut fields = Vec::with_capacity(items.len() / 2);
                let mut items = items.into_iter();
                while let (Some(k), Some(v)) = (items.next(), items.next()) {
                    if let (Some(k), Some(v)) = (bytes(k), bytes(v)) {
                        fields.push((k, v));
                    }
                }
                Ok(Ok(fields))
            }
            // RESP3.
            Value::Map(pairs) => Ok(Ok(pairs
                .into_iter()
                .filter_map(|(k, v)| Some((bytes(k)?, bytes(v)?)))
                .collect())),
            Value::Nil => Ok(Ok(Vec::new())),
            Value::ServerError(e) => Ok(Err(ReplyError {
                key: key.to_owned(),
                message: server_error(&e),
            })),
            other => Err(self.protocol("HGETALL", &other)),
        }
    }

    fn protocol(&self, command: &str, value: &Value) -> RedisError {
        // By characters: a reply's text may be any UTF-8, and byte 120 may split a character.
        let detail = format!("{value:?}").chars().take(120).collect();
        RedisError::Protocol {
            url: self.settings.redacted_url(),
            command: command.to_owned(),
            detail,
        }
    }

    /// Brings `tracker` up to date: the planned reads in one round trip, plus one more for
    /// processes that `SMEMBERS` revealed. `clock` gives the time each result is recorded at.
    /// On failure the tracker records it (so verdicts see the outage) and the error is returned.
    pub async fn refresh(
        &self,
        tracker: &mut Tracker,
        with_work: bool,
        clock: impl Fn() -> Now,
    ) -> Result<Refresh, RedisError> {
        let plan = tracker.plan(clock(), with_work);
        let mut cost = Refresh {
            round_trips: 1,
            commands: plan.commands(),
        };
        let first = match self.fetch(&plan).await {
            Ok(fetched) => fetched,
            Err(error) => {
                tracker.record_failure(clock(), errors::chain(&error));
                return Err(error);
            }
        };
        let mut processes = first.processes;
        if let Some(members) = &first.members
            && let Some(follow_up) = tracker.follow_up(members, with_work, clock())
        {
            cost.round_trips += 1;
            cost.commands += follow_up.commands();
            match self.fetch(&follow_up).await {
                Ok(more) => processes.extend(more.processes),
                Err(error) => {
                    tracker.record_failure(clock(), errors::chain(&error));
                    return Err(error);
                }
            }
        }
        tracker.ingest(clock(), first.members.as_deref(), processes);
        Ok(cost)
    }

    /// Quiets the process `identity` the way Sidekiq's Web UI does: in one `MULTI`, `LPUSH
    /// <id>-signals TSTP` and `EXPIRE <id>-signals 60`. The process pops it on its next
    /// heartbeat and reports `quiet` on the one after.
    pub async fn quiet(&self, identity: &str) -> Result<(), RedisError> {
        let key = self.keys.signals(identity);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("LPUSH")
            .arg(&key)
            .arg(QUIET_SIGNAL)
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(SIGNAL_TTL_SECS)
            .ignore();
        match self.query(&pipe, 4).await {
            Ok(Value::Array(_) | Value::Nil | Value::Okay) => Ok(()),
            Ok(other) => Err(self.protocol("MULTI LPUSH EXPIRE EXEC", &other)),
            Err(RedisError::Command { url, source }) => Err(RedisError::Push { key, url, source }),
            Err(other) => Err(other),
        }
    }
}

/// An error reply as Redis sends it: `WRONGTYPE Operation against a key…`.
fn server_error(error: &redis::ServerError) -> String {
    match error.details() {
        Some(details) => format!("{} {details}", error.code()),
        None => error.code().to_owned(),
    }
}

fn bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::Int(n) => Some(n.to_string().into_bytes()),
        Value::VerbatimString { text, .. } => Some(text.into_bytes()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_read_as_sidekiqs_clients_read_them() {
        assert_eq!(
            as_sidekiq_reads_it("redis://s3cret@h:6379/0"),
            "redis://:s3cret@h:6379/0"
        );
        for url in [
            "redis://:pw@h/0",
            "redis://app:pw@h/0",
            "redis://h/0",
            "unix:///r.sock",
        ] {
            assert_eq!(as_sidekiq_reads_it(url), url);
        }
        assert_eq!(
            fallback("rediss://app:p@ss@h:6380/1").as_deref(),
            Some("rediss://:p@ss@h:6380/1")
        );
        assert_eq!(
            fallback("redis://s3cret@h/0").as_deref(),
            Some("redis://h/0")
        );
        assert_eq!(fallback("redis://:pw@h/0"), None);
        assert_eq!(fallback("redis://h/0"), None);
        // An `@` in the query is no user info.
        for url in ["redis://h:6379/0?password=p@ss", "unix:///s.sock?pass=p@ss"] {
            assert_eq!(as_sidekiq_reads_it(url), url);
            assert_eq!(fallback(url), None);
        }
        // A `+` is a space to Sidekiq's clients (form decoding); `%2B` stays a plus.
        assert_eq!(
            as_sidekiq_reads_it("redis://app+ro:a+b%2Bc@h/0"),
            "redis://app+ro:a%20b%2Bc@h/0"
        );
        assert_eq!(as_sidekiq_reads_it("redis://a+b@h/0"), "redis://:a%20b@h/0");
    }

    #[test]
    fn a_database_in_the_query_is_read_as_sidekiq_7_reads_it() {
        for (given, read) in [
            ("redis://h:6379?db=2", "redis://h:6379/2?db=2"),
            (
                "rediss://:pw@h:6380/?db=3&protocol=3",
                "rediss://:pw@h:6380/3?db=3&protocol=3",
            ),
            // The path wins, as for redis-client.
            ("redis://h:6379/1?db=2", "redis://h:6379/1?db=2"),
            ("redis://h:6379?db=two", "redis://h:6379?db=two"),
            ("unix:///r.sock?db=2", "unix:///r.sock?db=2"),
            // The README's way to skip certificate checks, after a database.
            (
                "rediss://:pw@h:6380?db=2#insecure",
                "rediss://:pw@h:6380/2?db=2#insecure",
            ),
        ] {
            assert_eq!(as_sidekiq_reads_it(given), read, "{given}");
        }
        let info = as_sidekiq_reads_it("rediss://:pw@h:6380?db=2#insecure")
            .into_connection_info()
            .unwrap();
        assert_eq!(info.redis_settings().db(), 2);
        assert!(matches!(
            info.addr(),
            redis::ConnectionAddr::TcpTls { insecure: true, .. }
        ));
        let info = as_sidekiq_reads_it("redis://h:6379?db=2")
            .into_connection_info()
            .unwrap();
        assert_eq!(info.redis_settings().db(), 2);
    }
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn urls_are_found_like_sidekiq_finds_them() {
        let s = RedisSettings::from_lookup(lookup(&[])).unwrap();
        assert_eq!(
            (s.redacted_url(), s.source),
            (DEFAULT_URL.to_owned(), UrlSource::Default)
        );
        let s = RedisSettings::from_lookup(lookup(&[("REDIS_URL", "redis://r:6379/2")])).unwrap();
        assert_eq!(s.source, UrlSource::RedisUrl);
        let s = RedisSettings::from_lookup(lookup(&[
            ("REDIS_URL", "redis://r:6379/2"),
            ("REDIS_PROVIDER", "REDISTOGO_URL"),
            ("REDISTOGO_URL", "redis://:hunter2@togo:6379"),
        ]))
        .unwrap();
        assert_eq!(s.source, UrlSource::Provider("REDISTOGO_URL".into()));
        assert_eq!(s.redacted_url(), "redis://:***@togo:6379");
        // The named variable is unset: Sidekiq 7+ falls back to REDIS_URL.
        let s = RedisSettings::from_lookup(lookup(&[
            ("REDIS_URL", "redis://r:6379/2"),
            ("REDIS_PROVIDER", "MISSING_URL"),
        ]))
        .unwrap();
        assert_eq!(s.source, UrlSource::RedisUrl);
    }

    #[test]
    fn bad_settings_are_explained_without_secrets() {
        let err =
            RedisSettings::from_lookup(lookup(&[("REDIS_PROVIDER", "redis://:hunter2@togo:6379")]))
                .unwrap_err()
                .to_string();
        assert!(
            err.starts_with("REDIS_PROVIDER holds a URL (redis://:***@togo:6379)"),
            "{err}"
        );
        assert!(!err.contains("hunter2"));
        let err =
            RedisSettings::from_lookup(lookup(&[("REDIS_URL", "redis://:hunter2@host:6379/x")]))
                .unwrap_err()
                .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(
            err.starts_with("invalid Redis URL redis://:***@host:6379/x (from $REDIS_URL)"),
            "{err}"
        );
        let err = RedisSettings::from_lookup(lookup(&[("REDIS_URL", "http://redis:6379")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with(
                "; expected redis://[[user]:password@]host[:port][/db], or rediss://… for TLS"
            ),
            "{err}"
        );
    }

    #[test]
    fn an_odd_reply_is_quoted_whole_characters_only() {
        let reader = Reader::new(RedisSettings::new(
            "redis://:pw@localhost:6379/0",
            UrlSource::RedisUrl,
        ))
        .unwrap();
        // Byte 120 of the quoted reply falls inside an "é" (two bytes each).
        let reply = Value::BulkString("é".repeat(200).into_bytes());
        let err = reader.protocol("HGETALL", &reply);
        let RedisError::Protocol { url, detail, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(detail.chars().count(), 120);
        assert!(detail.starts_with("bulk-string('\"éé"), "{detail}");
        assert_eq!(url, "redis://:***@localhost:6379/0");
    }

    #[test]
    fn passwords_never_survive_redaction() {
        for (url, shown) in [
            ("redis://localhost:6379/0", "redis://localhost:6379/0"),
            ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
            (
                "rediss://user:p%40ss@h:1/0?protocol=resp3",
                "rediss://user:***@h:1/0?protocol=resp3",
            ),
            ("redis://secret@h", "redis://***@h"),
            ("redis://u:a@b@h/0", "redis://u:***@h/0"),
            // Unescaped `/`, `?` and `#` in generated passwords: invalid URLs, still hidden.
            ("redis://:pa/ss@h:6379", "redis://:***@h:6379"),
            ("redis://:a?b#c/d@h:1/0", "redis://:***@h:1/0"),
            (
                "redis://default:x/y@h/0?ssl=1",
                "redis://default:***@h/0?ssl=***",
            ),
            ("hunter2", "<not a URL, 7 characters>"),
            // Credentials redis-rs reads from the query.
            (
                "unix:///run/redis.sock?db=2&pass=s3cret",
                "unix:///run/redis.sock?db=2&pass=***",
            ),
            (
                "redis://h:6379/0?password=s3cret&protocol=resp3",
                "redis://h:6379/0?password=***&protocol=resp3",
            ),
            (
                "redis://:pw@h/0?user=u&Pass=x",
                "redis://:***@h/0?user=***&Pass=***",
            ),
            // An `@` inside a query value: nothing after `://` is shown.
            ("redis://localhost/0?password=p@ssTail", "redis://***"),
            ("redis://127.0.0.1:1/0?password=abc@Tail", "redis://***"),
            // A percent-encoded key is decoded by redis-rs: `p%61ss` is `pass`.
            (
                "redis+unix:///r.sock?p%61ss=p%40ss&db=1",
                "redis+unix:///r.sock?p%61ss=***&db=1",
            ),
        ] {
            assert_eq!(redact_url(url), shown);
        }
    }
}
