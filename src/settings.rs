//! Configuration: built-in defaults < config file (TOML) < environment.
//!
//! | key (file) | environment | default |
//! |---|---|---|
//! | `listen` | `DEVICEHUB_LISTEN` | `127.0.0.1:8080` |
//! | `data_dir` | `DEVICEHUB_DATA_DIR` | `./data` |
//! | `database_url` | `DATABASE_URL` (or `DEVICEHUB_DATABASE_URL`) | `sqlite://<data_dir>/devicehub.sqlite3` |
//! | `public_url` | `DEVICEHUB_PUBLIC_URL` | `http://<listen address>` |
//! | `admin_token` | `DEVICEHUB_ADMIN_TOKEN` | random, printed once on the first start |
//! | `object_store` | `DEVICEHUB_OBJECT_STORE` | `<data_dir>/objects` (`file://…`, `s3://bucket/prefix` with the `AWS_*` variables, `memory://`) |
//! | `[object_store_options]` | (file only; `AWS_*` in the environment) | S3 settings by object_store's names (`endpoint`, `region`, `allow_http`, `virtual_hosted_style_request`, …) |
//! | `download_redirect` | `DEVICEHUB_DOWNLOAD_REDIRECT` | `off`: stream downloads; `presigned` (S3) or `cdn`: answer them with a `307` to the store |
//! | `download_redirect_base` | `DEVICEHUB_DOWNLOAD_REDIRECT_BASE` | none: the CDN's base URL (`cdn`), joined with the object's key |
//! | `download_redirect_ttl_secs` | `DEVICEHUB_DOWNLOAD_REDIRECT_TTL_SECS` | `300`: lifetime of a presigned URL |
//! | `max_image_size` | `DEVICEHUB_MAX_IMAGE_SIZE` | `2147483648` (2 GiB, SWUpdate reads sizes as int32) |
//! | `db_pool_size` | `DEVICEHUB_DB_POOL_SIZE` | `8` |
//! | `http_workers` | `DEVICEHUB_HTTP_WORKERS` | number of CPUs |
//! | `log_format` | `DEVICEHUB_LOG_FORMAT` | `pretty` (`json` for containers) |
//! | `workers` | `DEVICEHUB_WORKERS` | `2` pipeline workers in `serve` (0: none, run `devicehub worker` elsewhere) |
//! | `job_lease_secs` | `DEVICEHUB_JOB_LEASE_SECS` | `30`: a crashed worker's job is retried after this |
//! | `job_max_attempts` | `DEVICEHUB_JOB_MAX_ATTEMPTS` | `3` |
//! | `queue_limit` | `DEVICEHUB_QUEUE_LIMIT` | `10000` queued jobs (two of the largest assignments); more fail with a queueing error |
//! | `poll_interval_ms` | `DEVICEHUB_POLL_INTERVAL_MS` | `1000`: how often workers and timers look for work |
//! | `link_ttl_secs` | `DEVICEHUB_LINK_TTL_SECS` | `3600`: lifetime of a download link |
//! | `ddi_default_product` | `DEVICEHUB_DDI_DEFAULT_PRODUCT` | none: the product (handle) hawkBit's tenant `DEFAULT` means |
//! | `ddi_body_timeout_secs` | `DEVICEHUB_DDI_BODY_TIMEOUT_SECS` | `30`: how long a hawkBit device's request body may take to arrive (408 after) |
//! | `assign_sync_max` | `DEVICEHUB_ASSIGN_SYNC_MAX` | `100`: an assignment naming more devices runs as a job (`202`, progress at `GET /api/v1/assignments/{id}`) |
//! | `download_map_mib` | `DEVICEHUB_DOWNLOAD_MAP_MIB` | `64`: the most MiB of a local store's files all downloads keep memory-mapped together (connections reading the same block share its map; past it, blocks are read into small buffers); `0`: every download maps its own 1 MiB blocks |
//! | `download_chunk_kib` | `DEVICEHUB_DOWNLOAD_CHUNK_KIB` | `1024`: the most of a download handed to the HTTP layer at once; with many downloads in flight from shared maps (`download_map_mib` above 0) each gets less (all share 32 MiB, at least 32 KiB each), since the HTTP layer copies each piece into the connection's buffer |
//! | `ui_idle_secs` | `DEVICEHUB_UI_IDLE_SECS` | `1800`: a web UI session ends after this long without a request |
//! | `ui_session_max_secs` | `DEVICEHUB_UI_SESSION_MAX_SECS` | `43200`: and at the latest this long after signing in |
//! | `ui_trust_forwarded_for` | `DEVICEHUB_UI_TRUST_FORWARDED_FOR` | `false`: count failed sign-ins per `X-Forwarded-For` address (only behind a proxy that sets it) |
//! | `amqp_url` | `AMQP_URL` (or `DEVICEHUB_AMQP_URL`) | none: the DMF door (hawkBit's AMQP API) is off |
//! | `dmf_exchange` | `DEVICEHUB_DMF_EXCHANGE` | `dmf.exchange`: where things publish (fanout to the receiver queue) |
//! | `dmf_receiver_queue` | `DEVICEHUB_DMF_RECEIVER_QUEUE` | `dmf_receiver` |
//! | `dmf_dead_letter_exchange` | `DEVICEHUB_DMF_DEAD_LETTER_EXCHANGE` | `dmf.connector.deadletter` |
//! | `dmf_dead_letter_queue` | `DEVICEHUB_DMF_DEAD_LETTER_QUEUE` | `dmf_connector_deadletter_ttl` (messages kept 21 days) |
//! | `dmf_reply_exchange` | `DEVICEHUB_DMF_REPLY_EXCHANGE` | `sp.direct.exchange`: replies to things without `reply_to` |
//! | `dmf_reply_queue` | `DEVICEHUB_DMF_REPLY_QUEUE` | `sp_direct_queue`, bound to the reply exchange |
//! | `dmf_prefetch` | `DEVICEHUB_DMF_PREFETCH` | `250` unacknowledged messages at most |
//! | `timeout_<state>` | `DEVICEHUB_TIMEOUT_<STATE>` | per session state, seconds; see `domain::procedure::Timeouts` |
//! | `orphan_grace_secs` | `DEVICEHUB_ORPHAN_GRACE_SECS` | `86400`: staging files and objects no row refers to are removed once this old |
//! | `orphan_sweep_interval_secs` | `DEVICEHUB_ORPHAN_SWEEP_INTERVAL_SECS` | `3600`: how often orphans are swept (and once at start-up) |
//! | `scrub_interval_secs` | `DEVICEHUB_SCRUB_INTERVAL_SECS` | `86400`: every stored object is re-hashed this often in the background (0: never; `devicehub scrub` still works) |
//! | `sealing_key` | `DEVICEHUB_SEALING_KEY` | none: the key(s) sealing secrets kept in the database, 64 hex digits each, comma-separated, the sealing one first (`service::sealing`) |
//! | `sealing_key_file` | `DEVICEHUB_SEALING_KEY_FILE` | `<data_dir>/sealing.key`, created on the first start: the same, one key per line |
//! | `metrics_token` | `DEVICEHUB_METRICS_TOKEN` | none: `/metrics` is open; set, it asks for `Authorization: Bearer <token>` |
//! | `scrub_bytes_per_sec` | `DEVICEHUB_SCRUB_BYTES_PER_SEC` | `16777216` (16 MiB/s per instance): how fast the scrub reads (0: unlimited) |
//!
//! The config file is `--config FILE` / `DEVICEHUB_CONFIG`, else `./devicehub.toml` when it
//! exists. `RUST_LOG` sets the log filter (default `info`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;
use url::Url;

use crate::domain::procedure::Timeouts;
use crate::storage::Redirect;

/// A secret that never shows in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Clone)]
pub struct Settings {
    pub listen: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    /// Base of every link the server hands out; `None` until the listener is bound, when it
    /// defaults to `http://<bound address>`.
    pub public_url: Option<Url>,
    pub admin_token: Option<Secret>,
    /// Keys sealing secrets kept in the database (`service::sealing`), else `sealing_key_file`.
    pub sealing_key: Option<Secret>,
    pub sealing_key_file: Option<PathBuf>,
    pub object_store: String,
    /// S3 settings from the config file (`[object_store_options]`: `endpoint`, `region`,
    /// `allow_http`, …, object_store's `AmazonS3ConfigKey` names); they override the `AWS_*`
    /// environment.
    pub object_store_options: BTreeMap<String, String>,
    /// Whether downloads are answered with a redirect to the store (or a CDN).
    pub download_redirect: Redirect,
    pub max_image_size: u64,
    pub db_pool_size: u32,
    pub http_workers: usize,
    pub log_format: LogFormat,
    pub workers: usize,
    pub job_lease_secs: u64,
    pub job_max_attempts: u32,
    pub queue_limit: u64,
    pub poll_interval_ms: u64,
    pub link_ttl_secs: u64,
    /// Server-wide session lifetimes; a procedure's own timeouts override them.
    pub timeouts: Timeouts,
    /// The product hawkBit devices reach as tenant `DEFAULT`.
    pub ddi_default_product: Option<String>,
    /// How long an authenticated DDI request's body may take to arrive, in seconds (408 after).
    pub ddi_body_timeout_secs: u64,
    /// Staging files and objects no database row refers to are removed once older than this.
    pub orphan_grace_secs: u64,
    /// How often orphans are swept (and once at start-up).
    pub orphan_sweep_interval_secs: u64,
    /// How often each stored object is re-hashed in the background; 0: never.
    pub scrub_interval_secs: u64,
    /// How fast the scrub reads, per instance; 0: unlimited.
    pub scrub_bytes_per_sec: u64,
    /// An assignment naming more devices than this runs as a job.
    pub assign_sync_max: usize,
    /// The most MiB all downloads from a local store keep mapped at once.
    pub download_map_mib: u64,
    /// How many KiB of a download are handed to the HTTP layer at once.
    pub download_chunk_kib: u64,
    /// A web UI session ends after this many seconds without a request.
    pub ui_idle_secs: u64,
    /// A web UI session ends this many seconds after signing in, however busy.
    pub ui_session_max_secs: u64,
    /// Failed sign-ins are counted per client address; behind a reverse proxy that sets
    /// `X-Forwarded-For`, the address is read from there.
    pub ui_trust_forwarded_for: bool,
    /// When set, `/metrics` answers only `Authorization: Bearer <token>`.
    pub metrics_token: Option<Secret>,
    /// The broker of the DMF door; `None`: the door is off.
    pub amqp_url: Option<Secret>,
    /// Names and limits of the DMF topology.
    pub dmf: DmfSettings,
}

/// The DMF topology's names (hawkBit's defaults) and the consumer's prefetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmfSettings {
    pub exchange: String,
    pub receiver_queue: String,
    pub dead_letter_exchange: String,
    pub dead_letter_queue: String,
    pub reply_exchange: String,
    pub reply_queue: String,
    pub prefetch: u16,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact_url(&self.database_url))
            .field("public_url", &self.public_url.as_ref().map(Url::as_str))
            .field("admin_token", &self.admin_token)
            .field("sealing_key", &self.sealing_key)
            .field("sealing_key_file", &self.sealing_key_file)
            .field("object_store", &redact_url(&self.object_store))
            .field("object_store_options", &self.object_store_options.keys().collect::<Vec<_>>())
            .field("download_redirect", &self.download_redirect)
            .field("max_image_size", &self.max_image_size)
            .field("db_pool_size", &self.db_pool_size)
            .field("http_workers", &self.http_workers)
            .field("log_format", &self.log_format)
            .field("workers", &self.workers)
            .field("job_lease_secs", &self.job_lease_secs)
            .field("job_max_attempts", &self.job_max_attempts)
            .field("queue_limit", &self.queue_limit)
            .field("poll_interval_ms", &self.poll_interval_ms)
            .field("link_ttl_secs", &self.link_ttl_secs)
            .field("timeouts", &self.timeouts)
            .field("ddi_default_product", &self.ddi_default_product)
            .field("ddi_body_timeout_secs", &self.ddi_body_timeout_secs)
            .field("orphan_grace_secs", &self.orphan_grace_secs)
            .field("orphan_sweep_interval_secs", &self.orphan_sweep_interval_secs)
            .field("scrub_interval_secs", &self.scrub_interval_secs)
            .field("scrub_bytes_per_sec", &self.scrub_bytes_per_sec)
            .field("assign_sync_max", &self.assign_sync_max)
            .field("download_map_mib", &self.download_map_mib)
            .field("download_chunk_kib", &self.download_chunk_kib)
            .field("ui_idle_secs", &self.ui_idle_secs)
            .field("ui_session_max_secs", &self.ui_session_max_secs)
            .field("ui_trust_forwarded_for", &self.ui_trust_forwarded_for)
            .field("amqp_url", &self.amqp_url.as_ref().map(|u| redact_url(u.expose())))
            .field("dmf", &self.dmf)
            .field("metrics_token", &self.metrics_token)
            .finish()
    }
}

/// Hides the password of a URL (`postgres://u:secret@h/db` → `postgres://u:***@h/db`).
pub fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => raw.to_owned(),
    }
}

/// What the file and the environment may set; everything optional.
#[derive(Debug, Default, Deserialize)]
struct RawSettings {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    public_url: Option<String>,
    admin_token: Option<String>,
    sealing_key: Option<String>,
    sealing_key_file: Option<PathBuf>,
    object_store: Option<String>,
    object_store_options: Option<BTreeMap<String, String>>,
    download_redirect: Option<String>,
    download_redirect_base: Option<String>,
    download_redirect_ttl_secs: Option<u64>,
    max_image_size: Option<u64>,
    db_pool_size: Option<u32>,
    http_workers: Option<usize>,
    log_format: Option<LogFormat>,
    workers: Option<usize>,
    job_lease_secs: Option<u64>,
    job_max_attempts: Option<u32>,
    queue_limit: Option<u64>,
    poll_interval_ms: Option<u64>,
    link_ttl_secs: Option<u64>,
    timeout_up_to_date: Option<u64>,
    timeout_ready: Option<u64>,
    timeout_queued: Option<u64>,
    timeout_processing: Option<u64>,
    timeout_created: Option<u64>,
    timeout_success: Option<u64>,
    timeout_fail: Option<u64>,
    timeout_unconfirmed: Option<u64>,
    ddi_default_product: Option<String>,
    ddi_body_timeout_secs: Option<u64>,
    orphan_grace_secs: Option<u64>,
    orphan_sweep_interval_secs: Option<u64>,
    scrub_interval_secs: Option<u64>,
    scrub_bytes_per_sec: Option<u64>,
    assign_sync_max: Option<usize>,
    download_map_mib: Option<u64>,
    download_chunk_kib: Option<u64>,
    ui_idle_secs: Option<u64>,
    ui_session_max_secs: Option<u64>,
    ui_trust_forwarded_for: Option<bool>,
    amqp_url: Option<String>,
    dmf_exchange: Option<String>,
    dmf_receiver_queue: Option<String>,
    dmf_dead_letter_exchange: Option<String>,
    dmf_dead_letter_queue: Option<String>,
    dmf_reply_exchange: Option<String>,
    dmf_reply_queue: Option<String>,
    dmf_prefetch: Option<u16>,
    metrics_token: Option<String>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_MAX_IMAGE_SIZE: u64 = 2 * 1024 * 1024 * 1024;
/// DDI bodies are small JSON documents (at most 1 MiB); half a minute is plenty on a slow link.
pub const DEFAULT_DDI_BODY_TIMEOUT_SECS: u64 = 30;
/// A day: far longer than an upload or a pipeline attempt takes between writing an object
/// and recording it (the default `processing` limit is 30 minutes), and orphans are rare
/// (a crash), so waiting costs little.
pub const DEFAULT_ORPHAN_GRACE_SECS: u64 = 86_400;
/// Five minutes: long enough to follow a redirect on a slow link (a transfer that started
/// goes on after the URL expires), short enough that a leaked URL soon stops working.
pub const DEFAULT_DOWNLOAD_REDIRECT_TTL_SECS: u64 = 300;
/// 16 MiB/s: a 2 GiB image in about two minutes, a few percent of a disk's or a core's time.
pub const DEFAULT_SCRUB_BYTES_PER_SEC: u64 = 16 * 1024 * 1024;

impl Settings {
    /// Loads the layers from the real environment and the given (or default) config file.
    pub fn load(config_file: Option<&Path>) -> anyhow::Result<Settings> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let (path, required) = match config_file {
            Some(p) => (Some(p.to_path_buf()), true),
            None => {
                let default = PathBuf::from("devicehub.toml");
                (default.exists().then_some(default), false)
            }
        };
        let file = match &path {
            Some(p) => match std::fs::read_to_string(p) {
                Ok(text) => Some(text),
                Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e).with_context(|| format!("reading config file {}", p.display())),
            },
            None => None,
        };
        Settings::from_sources(file.as_deref(), &env)
    }

    /// Merges defaults < `file` (TOML text) < `env`. Pure, so precedence is unit-tested.
    pub fn from_sources(file: Option<&str>, env: &HashMap<String, String>) -> anyhow::Result<Settings> {
        let mut builder = config::Config::builder();
        if let Some(text) = file {
            builder = builder.add_source(config::File::from_str(text, config::FileFormat::Toml));
        }
        let prefixed: HashMap<String, String> =
            env.iter().filter(|(k, _)| k.starts_with("DEVICEHUB_")).map(|(k, v)| (k.clone(), v.clone())).collect();
        builder = builder
            .add_source(config::Environment::with_prefix("DEVICEHUB").prefix_separator("_").source(Some(prefixed)))
            .set_override_option("database_url", env.get("DATABASE_URL").filter(|v| !v.is_empty()).cloned())
            .context("reading DATABASE_URL")?
            .set_override_option("amqp_url", env.get("AMQP_URL").filter(|v| !v.is_empty()).cloned())
            .context("reading AMQP_URL")?;
        let raw: RawSettings = builder
            .build()
            .context("reading configuration")?
            .try_deserialize()
            .context("configuration has a value of the wrong type")?;
        Settings::from_raw(raw)
    }

    fn from_raw(raw: RawSettings) -> anyhow::Result<Settings> {
        let data_dir = raw.data_dir.unwrap_or_else(|| PathBuf::from("./data"));
        let database_url = match raw.database_url.filter(|s| !s.is_empty()) {
            Some(url) => url,
            None => format!("sqlite://{}", data_dir.join("devicehub.sqlite3").display()),
        };
        let public_url = match raw.public_url.filter(|s| !s.is_empty()) {
            Some(s) => Some(parse_public_url(&s)?),
            None => None,
        };
        let object_store = raw
            .object_store
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| data_dir.join("objects").display().to_string());
        let http_workers =
            raw.http_workers.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
        let settings = Settings {
            listen: raw.listen.filter(|s| !s.is_empty()).unwrap_or_else(|| DEFAULT_LISTEN.to_owned()),
            data_dir,
            database_url,
            public_url,
            admin_token: raw.admin_token.filter(|s| !s.is_empty()).map(Secret),
            sealing_key: raw.sealing_key.filter(|s| !s.is_empty()).map(Secret),
            sealing_key_file: raw.sealing_key_file.filter(|p| !p.as_os_str().is_empty()),
            object_store,
            object_store_options: raw.object_store_options.unwrap_or_default(),
            download_redirect: Redirect::parse(
                raw.download_redirect.as_deref().unwrap_or("off"),
                raw.download_redirect_base.as_deref(),
                raw.download_redirect_ttl_secs.unwrap_or(DEFAULT_DOWNLOAD_REDIRECT_TTL_SECS),
            )?,
            max_image_size: raw.max_image_size.unwrap_or(DEFAULT_MAX_IMAGE_SIZE),
            db_pool_size: raw.db_pool_size.unwrap_or(8),
            http_workers,
            log_format: raw.log_format.unwrap_or(LogFormat::Pretty),
            workers: raw.workers.unwrap_or(2),
            job_lease_secs: raw.job_lease_secs.unwrap_or(30),
            job_max_attempts: raw.job_max_attempts.unwrap_or(3),
            queue_limit: raw.queue_limit.unwrap_or(10_000),
            poll_interval_ms: raw.poll_interval_ms.unwrap_or(1000),
            link_ttl_secs: raw.link_ttl_secs.unwrap_or(3600),
            timeouts: Timeouts {
                up_to_date: raw.timeout_up_to_date,
                ready: raw.timeout_ready,
                queued: raw.timeout_queued,
                processing: raw.timeout_processing,
                created: raw.timeout_created,
                success: raw.timeout_success,
                fail: raw.timeout_fail,
                unconfirmed: raw.timeout_unconfirmed,
            }
            .or(Timeouts::server_defaults()),
            ddi_default_product: raw.ddi_default_product.filter(|s| !s.is_empty()),
            ddi_body_timeout_secs: raw.ddi_body_timeout_secs.unwrap_or(DEFAULT_DDI_BODY_TIMEOUT_SECS),
            orphan_grace_secs: raw.orphan_grace_secs.unwrap_or(DEFAULT_ORPHAN_GRACE_SECS),
            orphan_sweep_interval_secs: raw.orphan_sweep_interval_secs.unwrap_or(3600),
            scrub_interval_secs: raw.scrub_interval_secs.unwrap_or(86_400),
            scrub_bytes_per_sec: raw.scrub_bytes_per_sec.unwrap_or(DEFAULT_SCRUB_BYTES_PER_SEC),
            assign_sync_max: raw.assign_sync_max.unwrap_or(100),
            download_map_mib: raw.download_map_mib.unwrap_or(64),
            download_chunk_kib: raw.download_chunk_kib.unwrap_or(1024),
            ui_idle_secs: raw.ui_idle_secs.unwrap_or(1800),
            ui_session_max_secs: raw.ui_session_max_secs.unwrap_or(43_200),
            ui_trust_forwarded_for: raw.ui_trust_forwarded_for.unwrap_or(false),
            amqp_url: raw.amqp_url.filter(|s| !s.is_empty()).map(Secret),
            dmf: DmfSettings {
                exchange: name_or(raw.dmf_exchange, "dmf.exchange"),
                receiver_queue: name_or(raw.dmf_receiver_queue, "dmf_receiver"),
                dead_letter_exchange: name_or(raw.dmf_dead_letter_exchange, "dmf.connector.deadletter"),
                dead_letter_queue: name_or(raw.dmf_dead_letter_queue, "dmf_connector_deadletter_ttl"),
                reply_exchange: name_or(raw.dmf_reply_exchange, "sp.direct.exchange"),
                reply_queue: name_or(raw.dmf_reply_queue, "sp_direct_queue"),
                prefetch: raw.dmf_prefetch.unwrap_or(250),
            },
            metrics_token: raw.metrics_token.filter(|s| !s.is_empty()).map(Secret),
        };
        settings.validate()?;
        Ok(settings)
    }

    /// Defaults for a data directory, with nothing read from file or environment (tests).
    pub fn for_data_dir(data_dir: &Path) -> Settings {
        let raw = RawSettings { data_dir: Some(data_dir.to_path_buf()), ..RawSettings::default() };
        #[expect(clippy::expect_used, reason = "the defaults are valid by construction")]
        Settings::from_raw(raw).expect("default settings are valid")
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.db_pool_size == 0 {
            bail!("db_pool_size must be at least 1");
        }
        if self.http_workers == 0 {
            bail!("http_workers must be at least 1");
        }
        if self.max_image_size == 0 {
            bail!("max_image_size must be at least 1 byte");
        }
        if self.job_lease_secs == 0
            || self.job_max_attempts == 0
            || self.poll_interval_ms == 0
            || self.link_ttl_secs == 0
            || self.ddi_body_timeout_secs == 0
            || self.orphan_grace_secs == 0
            || self.orphan_sweep_interval_secs == 0
            || self.ui_idle_secs == 0
            || self.ui_session_max_secs == 0
        {
            bail!(
                "job_lease_secs, job_max_attempts, poll_interval_ms, link_ttl_secs, ddi_body_timeout_secs, \
                 orphan_grace_secs, orphan_sweep_interval_secs, ui_idle_secs and ui_session_max_secs must be at \
                 least 1"
            );
        }
        if self.dmf.prefetch == 0 {
            bail!("dmf_prefetch must be at least 1");
        }
        if let Some(url) = &self.amqp_url
            && !(url.expose().starts_with("amqp://") || url.expose().starts_with("amqps://"))
        {
            bail!("amqp_url must be an amqp:// URL (got {})", redact_url(url.expose()));
        }
        self.timeouts.check().map_err(|e| anyhow::anyhow!("session timeouts: {e}"))?;
        if let Some(token) = &self.admin_token
            && token.expose().len() < 16
        {
            bail!("DEVICEHUB_ADMIN_TOKEN must be at least 16 characters");
        }
        Ok(())
    }
}

/// A configured AMQP object name, or hawkBit's default.
fn name_or(configured: Option<String>, default: &str) -> String {
    configured.filter(|s| !s.trim().is_empty()).unwrap_or_else(|| default.to_owned())
}

/// The public base URL, always ending in `/` so that `join` keeps its path.
pub fn parse_public_url(raw: &str) -> anyhow::Result<Url> {
    let mut url = Url::parse(raw).with_context(|| format!("public_url {raw:?} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("public_url must be http:// or https:// (got {raw:?})");
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults_are_the_embedded_setup() -> anyhow::Result<()> {
        let s = Settings::from_sources(None, &env(&[]))?;
        assert_eq!(s.listen, "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        assert_eq!(s.database_url, "sqlite://./data/devicehub.sqlite3");
        assert_eq!(s.object_store, "./data/objects");
        assert!(s.public_url.is_none() && s.admin_token.is_none());
        assert_eq!((s.ui_idle_secs, s.ui_session_max_secs, s.ui_trust_forwarded_for), (1800, 43_200, false));
        Ok(())
    }

    #[test]
    fn file_overrides_defaults_and_env_overrides_file() -> anyhow::Result<()> {
        let file = "listen = \"0.0.0.0:9000\"\ndata_dir = \"/srv/dh\"\nmax_image_size = 1000\n";
        let s = Settings::from_sources(Some(file), &env(&[]))?;
        assert_eq!(s.listen, "0.0.0.0:9000");
        assert_eq!(s.database_url, "sqlite:///srv/dh/devicehub.sqlite3");
        assert_eq!(s.max_image_size, 1000);

        let e = env(&[
            ("DEVICEHUB_LISTEN", "127.0.0.1:7000"),
            ("DEVICEHUB_MAX_IMAGE_SIZE", "5"),
            ("DATABASE_URL", "postgres://u:pw@localhost/db"),
            ("DEVICEHUB_PUBLIC_URL", "https://fw.example.com/hub"),
        ]);
        let s = Settings::from_sources(Some(file), &e)?;
        assert_eq!(s.listen, "127.0.0.1:7000");
        assert_eq!(s.max_image_size, 5);
        assert_eq!(s.data_dir, PathBuf::from("/srv/dh"));
        assert_eq!(s.database_url, "postgres://u:pw@localhost/db");
        assert_eq!(s.public_url.as_ref().map(Url::as_str), Some("https://fw.example.com/hub/"));
        assert!(!format!("{s:?}").contains("pw@"), "Debug must redact the password");
        let e = env(&[("DEVICEHUB_UI_IDLE_SECS", "600"), ("DEVICEHUB_UI_TRUST_FORWARDED_FOR", "true")]);
        let s = Settings::from_sources(None, &e)?;
        assert_eq!((s.ui_idle_secs, s.ui_trust_forwarded_for), (600, true));
        let e = env(&[("DEVICEHUB_TIMEOUT_READY", "60"), ("DEVICEHUB_WORKERS", "0")]);
        let s = Settings::from_sources(None, &e)?;
        assert_eq!(s.timeouts.ready, Some(60));
        assert_eq!(s.timeouts.created, Some(86400), "unset timeouts keep the defaults");
        assert_eq!(s.workers, 0);
        Ok(())
    }

    #[test]
    fn s3_options_and_redirects_come_from_the_file_and_the_environment() -> anyhow::Result<()> {
        let file = "object_store = \"s3://fw/hub\"\n[object_store_options]\nendpoint = \"http://minio:9000\"\nallow_http = true\n";
        let s = Settings::from_sources(Some(file), &env(&[("DEVICEHUB_DOWNLOAD_REDIRECT", "presigned")]))?;
        assert_eq!(s.object_store, "s3://fw/hub");
        assert_eq!(s.object_store_options.get("endpoint").map(String::as_str), Some("http://minio:9000"));
        assert_eq!(s.object_store_options.get("allow_http").map(String::as_str), Some("true"));
        assert_eq!(s.download_redirect, Redirect::Presigned { ttl: std::time::Duration::from_secs(300) });
        assert_eq!(Settings::from_sources(None, &env(&[]))?.download_redirect, Redirect::Off);
        Ok(())
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Settings::from_sources(Some("max_image_size = \"big\""), &env(&[])).is_err());
        assert!(Settings::from_sources(None, &env(&[("DEVICEHUB_PUBLIC_URL", "ftp://x")])).is_err());
        assert!(Settings::from_sources(None, &env(&[("DEVICEHUB_ADMIN_TOKEN", "short")])).is_err());
        assert!(Settings::from_sources(None, &env(&[("DEVICEHUB_UI_IDLE_SECS", "0")])).is_err());
        assert!(Settings::from_sources(None, &env(&[("DEVICEHUB_DOWNLOAD_REDIRECT", "cdn")])).is_err());
        assert!(Settings::from_sources(None, &env(&[("DEVICEHUB_DOWNLOAD_REDIRECT", "always")])).is_err());
    }
}
