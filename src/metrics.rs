//! Prometheus metrics (`GET /metrics`), with `prometheus-client`: the Prometheus project's
//! own Rust client, typed, with no global recorder and four small dependencies.
//!
//! Counters and histograms live in one process-wide [`Metrics`] ([`get`]): the doors, the
//! session engine and the workers count as things happen (an atomic add and, for labelled
//! series, a read-locked map lookup). What the database knows (sessions by state, the job
//! queue) is not counted along the way but asked at scrape time, one grouped query each
//! (`service::metrics`), so it is right across instances and restarts.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{LazyLock, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::encode`]'s text (OpenMetrics 1.0, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: &'static str,
    /// The matched route pattern (`/api/v1/devices/{id}`), never the raw path.
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DoorLabels {
    pub door: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SessionLabels {
    pub state: String,
    /// `rest`: a device asked (seed 003); `hawkbit`: an admin assigned it (DDI, DMF).
    pub door: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    pub from: &'static str,
    pub to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FeedbackLabels {
    /// `deployment` or `cancel`.
    pub kind: &'static str,
    pub execution: &'static str,
    pub finished: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub state: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every series devicehub exports.
pub struct Metrics {
    registry: Registry,
    pub http_duration: Histograms<RouteLabels>,
    pub downloads: Family<DoorLabels, Counter>,
    pub download_bytes: Family<DoorLabels, Counter>,
    pub ddi_polls: Family<ResultLabels, Counter>,
    pub feedback: Family<FeedbackLabels, Counter>,
    pub transitions: Family<TransitionLabels, Counter>,
    pub pipeline_runs: Family<ResultLabels, Counter>,
    pub pipeline_duration: Histograms<ResultLabels>,
    /// Set at scrape time from the database.
    pub sessions: Family<SessionLabels, Gauge>,
    pub queue_depth: Family<KindLabels, Gauge>,
    pub queue_oldest_age: Family<KindLabels, Gauge<f64, AtomicU64>>,
    pub pool_connections: Family<PoolLabels, Gauge>,
    pub pool_max: Gauge,
}

fn latency() -> Histogram {
    // 0.25 ms … about 8 s
    Histogram::new(exponential_buckets(0.00025, 2.0, 16))
}

fn pipeline_time() -> Histogram {
    // 50 ms … about 27 min
    Histogram::new(exponential_buckets(0.05, 2.0, 16))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("devicehub");
        let m = Metrics {
            http_duration: Family::new_with_constructor(latency),
            downloads: Family::default(),
            download_bytes: Family::default(),
            ddi_polls: Family::default(),
            feedback: Family::default(),
            transitions: Family::default(),
            pipeline_runs: Family::default(),
            pipeline_duration: Family::new_with_constructor(pipeline_time),
            sessions: Family::default(),
            queue_depth: Family::default(),
            queue_oldest_age: Family::default(),
            pool_connections: Family::default(),
            pool_max: Gauge::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "http_request_duration_seconds",
            "HTTP requests by method and matched route pattern, and how long they took",
            m.http_duration.clone(),
        );
        r.register("downloads", "Download answers that served bytes, by door", m.downloads.clone());
        r.register("download_bytes", "Bytes served by downloads (as answered), by door", m.download_bytes.clone());
        r.register("ddi_polls", "hawkBit DDI polls by HTTP result (200, 304, 401, other)", m.ddi_polls.clone());
        r.register("ddi_feedback", "hawkBit DDI feedback by kind and status", m.feedback.clone());
        r.register("session_transitions", "Session state changes written, by from and to state", m.transitions.clone());
        r.register("pipeline_runs", "Pipeline runs by result (success, failure, lost)", m.pipeline_runs.clone());
        r.register("pipeline_duration_seconds", "How long pipeline runs took, by result", m.pipeline_duration.clone());
        r.register("sessions", "Live (not expired) sessions by state and door", m.sessions.clone());
        r.register("job_queue_depth", "Jobs waiting (not leased), by kind", m.queue_depth.clone());
        r.register(
            "job_queue_oldest_age_seconds",
            "Age of the oldest waiting job, by kind",
            m.queue_oldest_age.clone(),
        );
        r.register(
            "db_pool_connections",
            "Database pool connections by state (idle, in_use)",
            m.pool_connections.clone(),
        );
        r.register("db_pool_max_connections", "Database pool size", m.pool_max.clone());
        Metrics { registry, ..m }
    }

    /// The text Prometheus scrapes.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// Counts a download answer of `door` that served `bytes`.
    pub fn download(&self, door: &'static str, bytes: u64) {
        let labels = DoorLabels { door };
        self.downloads.get_or_create(&labels).inc();
        self.download_bytes.get_or_create(&labels).inc_by(bytes);
    }
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// A `&'static str` for a route pattern: each distinct pattern is kept once for the life of
/// the process (there are a hundred or so), so labels cost no allocation per request.
pub fn intern(pattern: String) -> &'static str {
    static PATTERNS: LazyLock<Mutex<HashSet<&'static str>>> = LazyLock::new(Default::default);
    let mut set = PATTERNS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(p) = set.get(pattern.as_str()) {
        return p;
    }
    let leaked: &'static str = Box::leak(pattern.into_boxed_str());
    set.insert(leaked);
    leaked
}
