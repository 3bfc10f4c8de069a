//! Per-job logs: a `tracing` layer that copies every event raised inside a
//! span carrying a `job_id` field into `<state_dir>/jobs/<id>.log`, so each
//! job keeps its own log beside its row in the job log (`coffer job log ID`).
//! The daemon's main log still receives every event.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The layer; install it in the daemon's subscriber.
#[derive(Debug, Clone)]
pub struct JobLogLayer {
    dir: PathBuf,
}

impl JobLogLayer {
    /// Writes job logs under `dir` (created when needed).
    pub fn new(dir: &Path) -> JobLogLayer {
        JobLogLayer {
            dir: dir.to_path_buf(),
        }
    }
}

/// The job id a span carries, kept in the span's extensions.
struct JobId(i64);

#[derive(Default)]
struct FindJob(Option<i64>);

impl Visit for FindJob {
    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name() == "job_id" {
            self.0 = Some(value);
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "job_id" {
            self.0 = i64::try_from(value).ok();
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

/// The path of job `id`'s log under `dir`.
pub fn path(dir: &Path, id: i64) -> PathBuf {
    dir.join(format!("{id}.log"))
}

impl<S> tracing_subscriber::Layer<S> for JobLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut find = FindJob::default();
        attrs.record(&mut find);
        if let (Some(job), Some(span)) = (find.0, ctx.span(id)) {
            span.extensions_mut().insert(JobId(job));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let Some(job) = scope
            .from_root()
            .find_map(|span| span.extensions().get::<JobId>().map(|j| j.0))
        else {
            return;
        };
        let mut line = Line::default();
        event.record(&mut line);
        let now = jiff::Timestamp::now();
        let text = format!(
            "{} {:>5} {}{}\n",
            now.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
            event.metadata().level(),
            line.message,
            line.fields
        );
        let _ = std::fs::create_dir_all(&self.dir);
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path(&self.dir, job))
        {
            let _ = f.write_all(text.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn events_inside_a_job_span_land_in_that_jobs_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let subscriber = tracing_subscriber::registry().with(JobLogLayer::new(dir.path()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("outside any job");
            let span = tracing::info_span!("job", job_id = 7_i64, asset = "web-01");
            let _g = span.enter();
            tracing::info!(files = 3_u64, "backup started");
            let inner = tracing::info_span!("phase");
            let _i = inner.enter();
            tracing::warn!("cannot read /srv/x: permission denied");
        });
        let text = std::fs::read_to_string(path(dir.path(), 7)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].contains("INFO backup started files=3"), "{text}");
        assert!(lines[1].contains("WARN cannot read /srv/x"), "{text}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
