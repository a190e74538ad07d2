//! What operators watch: Prometheus metrics and the logs' format.
//!
//! Counters and histograms are recorded where things happen (a save, a presign, an inference)
//! through the `metrics` macros into one process-wide Prometheus recorder; the figures that
//! live in the database (queued jobs, the evaluation backlog) and the database pool are read
//! when Prometheus scrapes `GET /metrics` (`http::metrics`), so every instance reports the
//! shared queue alike.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::error::AppError;

/// Latency buckets in seconds: a save's few milliseconds to an inference's minutes.
const SECONDS_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
/// Size buckets in bytes: one slab of a stroke to a whole large mask.
const BYTES_BUCKETS: &[f64] =
    &[1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0, 67108864.0];

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use (by the first app started: the binary's
/// one, or the first of a test run's).
pub fn recorder() -> &'static PrometheusHandle {
    RECORDER.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .and_then(|builder| builder.set_buckets_for_metric(Matcher::Suffix("_bytes".into()), BYTES_BUCKETS))
            .expect("bucket lists are not empty")
            .install_recorder()
            .expect("the only place a metrics recorder is installed");
        describe();
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("seglab_http_requests_total", "HTTP requests answered, by route template, method and status");
    describe_histogram!(
        "seglab_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by route template and method"
    );
    describe_counter!(
        "seglab_label_saves_total",
        "Label saves by outcome: created, replayed, conflict, refused, failed"
    );
    describe_histogram!("seglab_label_save_duration_seconds", Unit::Seconds, "Label save latency by outcome");
    describe_histogram!("seglab_label_save_written_bytes", Unit::Bytes, "Bytes of mask slabs one created save wrote");
    describe_counter!("seglab_presigned_urls_total", "Object-storage URLs presigned for browsers");
    describe_counter!(
        "seglab_imports_total",
        "Case imports by format (nifti, dicom; PACS imports are dicom) and outcome (created, refused, failed)"
    );
    describe_gauge!("seglab_jobs_queued", "Model jobs waiting to run, by priority (interactive, backfill)");
    describe_gauge!(
        "seglab_jobs_oldest_queued_age_seconds",
        Unit::Seconds,
        "Age of the oldest queued model job (0 when none)"
    );
    describe_histogram!("seglab_inference_duration_seconds", Unit::Seconds, "Inference time per model version");
    describe_counter!("seglab_inference_failures_total", "Failed inferences per model version");
    describe_counter!(
        "seglab_inference_sent_bytes_total",
        Unit::Bytes,
        "Bytes sent to inference servers, by tensor encoding"
    );
    describe_counter!(
        "seglab_inference_received_bytes_total",
        Unit::Bytes,
        "Bytes read from inference servers, by tensor encoding"
    );
    describe_counter!("seglab_evaluations_total", "Predictions scored against a human mask by this instance");
    describe_gauge!("seglab_evaluation_backlog", "Predictions waiting for their score against the latest human mask");
    describe_gauge!("seglab_pacs_imports_queued", "PACS series imports waiting or running");
    describe_gauge!("seglab_pacs_outbox_pending", "Approved masks waiting to be sent to the PACS");
    describe_counter!("seglab_login_failures_total", "Failed logins (wrong username or password)");
    describe_counter!("seglab_login_refusals_total", "Logins refused with 429 after too many failures");
    describe_counter!("seglab_object_store_errors_total", "Object-storage requests that failed");
    describe_counter!("seglab_database_errors_total", "Database requests that failed");
    describe_gauge!("seglab_db_connections", "Database pool connections by state (in_use, idle)");
}

/// Counts each request by its route template (never its path: ids would make a series per
/// case) and status, and times it. Mounted as a route layer, where the template is known.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_default();
    let method = request.method().as_str().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("seglab_http_request_duration_seconds", "route" => route.clone(), "method" => method.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("seglab_http_requests_total", "route" => route, "method" => method, "status" => status)
        .increment(1);
    response
}

/// How an operation that creates something ended, as the metrics name it: `created`,
/// `refused` (the caller's input or rights: a 4xx) or `failed` (ours or a dependency's).
pub fn outcome<T>(result: &Result<T, AppError>) -> &'static str {
    match result {
        Ok(_) => "created",
        Err(err) if err.status().is_client_error() => "refused",
        Err(_) => "failed",
    }
}

/// How the logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line, for log collectors; each request's lines carry its id.
    Json,
}

/// Starts logging to standard error in `format`, filtered by `RUST_LOG` (default `info`).
pub fn init_logs(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(false).init(),
    }
}
