//! A worker: claim a job (with a lease), keep the lease alive while it runs, then record
//! the outcome, only if the lease is still ours. A worker that dies simply stops renewing;
//! when its lease runs out another worker takes the job over.

use std::time::Duration;

use tracing::Instrument;

use crate::metrics::ResultLabels;

use crate::service::Hub;
use crate::service::jobs::{self, Task};
use crate::service::{assignments, outbox, pipeline as session_pipeline};

pub async fn run(hub: Hub, worker: String) {
    let poll = Duration::from_millis(hub.settings.poll_interval_ms);
    loop {
        // Register for the wake-up before looking, so an enqueue in between is not missed.
        let notified = hub.jobs_ready.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match jobs::claim_next(&hub, &worker).await {
            Ok(Some(task)) => {
                dispatch(&hub, task).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(worker, error = %e, "claiming a job failed"),
        }
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep(poll) => {}
        }
    }
}

/// Runs a claimed job in a `job{…}` span naming its session, so every log line of the run
/// (the pipeline's steps too) says which session it works for.
async fn dispatch(hub: &Hub, task: Task) {
    match task {
        Task::Pipeline(task) => {
            let span = tracing::info_span!("job", kind = "pipeline", session = %task.session_id);
            run_pipeline(hub, *task).instrument(span).await;
        }
        Task::Deliver(delivery) => {
            let session = delivery.notice.session.as_deref().unwrap_or("-");
            let span = tracing::info_span!("job", kind = "deliver", job = %delivery.lease.job_id, session);
            async {
                tokio::select! {
                    () = outbox::deliver(hub, &delivery) => {}
                    () = jobs::keep_lease(hub, &delivery.lease) => {
                        tracing::warn!(job = %delivery.lease.job_id, "lost a delivery's lease; another worker has it");
                    }
                }
            }
            .instrument(span)
            .await;
        }
        Task::Assign(task) => {
            let span = tracing::info_span!("job", kind = "assign", job = %task.lease.job_id);
            async {
                tokio::select! {
                    () = assignments::run(hub, &task) => {}
                    () = jobs::keep_lease(hub, &task.lease) => {
                        tracing::warn!(job = %task.lease.job_id, "lost an assignment's lease; another worker has it");
                    }
                }
            }
            .instrument(span)
            .await;
        }
    }
}

/// Runs the steps under the per-attempt time limit while renewing the lease.
async fn run_pipeline(hub: &Hub, task: session_pipeline::Task) {
    let worker = &task.lease.worker;
    tracing::info!(worker, session = %task.session_id, attempt = task.lease.attempt, "pipeline started");
    let started = std::time::Instant::now();
    let outcome = tokio::select! {
        r = tokio::time::timeout(task.time_limit, session_pipeline::run(hub, &task)) => match r {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("the pipeline took longer than {} s", task.time_limit.as_secs())),
        },
        () = jobs::keep_lease(hub, &task.lease) => {
            tracing::warn!(worker, session = %task.session_id, "lost the job's lease; another worker has it");
            crate::metrics::get().pipeline_runs.get_or_create(&ResultLabels { result: "lost" }).inc();
            return;
        }
    };
    let result = if outcome.is_ok() { "success" } else { "failure" };
    let m = crate::metrics::get();
    m.pipeline_runs.get_or_create(&ResultLabels { result }).inc();
    m.pipeline_duration.get_or_create(&ResultLabels { result }).observe(started.elapsed().as_secs_f64());
    let recorded = match outcome {
        Ok(deliverable) => session_pipeline::finish(hub, &task, deliverable).await,
        Err(error) => session_pipeline::attempt_failed(hub, &task, error).await,
    };
    if let Err(e) = recorded {
        tracing::warn!(worker, session = %task.session_id, error = %e, "recording the pipeline outcome failed");
    }
}
