//! Where events go: JSON lines on stdout or in a file for the local record, and, when MQTT is configured, a
//! forwarder that puts each event in the durable outbox for the publisher.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use checkpoint_protocol::{Envelope, EventKind};
use parking_lot::Mutex;
use time::OffsetDateTime;

/// Events out of the agent. Cheap to clone; every clone writes to the same place, one whole line per event.
#[derive(Clone)]
pub struct EventSink {
    site: Arc<str>,
    agent: Arc<str>,
    out: Option<Arc<Mutex<Box<dyn Write + Send>>>>,
    forward: Option<Arc<dyn EventForward>>,
}

/// Takes every event after it is written locally (the outbox, in the agent).
pub trait EventForward: Send + Sync {
    fn forward(&self, event: &Envelope, json: &str);
}

impl EventSink {
    /// `target` is `-` for stdout, a file path (appended to, created if missing), or empty for no local copy.
    pub fn open(site: &str, agent: &str, target: &str) -> std::io::Result<Self> {
        if target.is_empty() {
            return Ok(Self {
                site: site.into(),
                agent: agent.into(),
                out: None,
                forward: None,
            });
        }
        let out: Box<dyn Write + Send> = if target == "-" {
            Box::new(std::io::stdout())
        } else {
            let path = PathBuf::from(target);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            Box::new(BufWriter::new(
                OpenOptions::new().create(true).append(true).open(path)?,
            ))
        };
        Ok(Self::with_writer(site, agent, out))
    }

    pub fn with_writer(site: &str, agent: &str, out: Box<dyn Write + Send>) -> Self {
        Self {
            site: site.into(),
            agent: agent.into(),
            out: Some(Arc::new(Mutex::new(out))),
            forward: None,
        }
    }

    /// Also hands every event to `forward`.
    pub fn with_forward(mut self, forward: Arc<dyn EventForward>) -> Self {
        self.forward = Some(forward);
        self
    }

    pub fn emit(&self, event: EventKind) -> Envelope {
        self.emit_at(OffsetDateTime::now_utc(), event)
    }

    pub fn emit_at(&self, ts: OffsetDateTime, event: EventKind) -> Envelope {
        let env = Envelope::new(&self.site, &self.agent, ts, event);
        let line = env.to_json();
        // Into the outbox first: the local copy then only ever lists events that are on their way, whatever
        // moment the process dies at.
        if let Some(f) = &self.forward {
            f.forward(&env, &line);
        }
        if let Some(out) = &self.out {
            let mut out = out.lock();
            // A full disk or closed pipe must not take the cameras down; the failure is logged.
            if let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush()) {
                tracing::error!(error = %e, kind = env.kind(), "could not write event");
            }
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use checkpoint_protocol::{AgentState, AgentStatus};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn one_json_line_per_event_with_unique_ids() {
        let buf = Buf::default();
        let sink = EventSink::with_writer("s", "a", Box::new(buf.clone()));
        for _ in 0..3 {
            sink.emit(EventKind::AgentStatus(AgentStatus {
                state: AgentState::Online,
                version: "t".into(),
                cameras: vec![],
            }));
        }
        let text = String::from_utf8(buf.0.lock().clone()).unwrap();
        let ids: std::collections::HashSet<_> = text
            .lines()
            .map(|l| Envelope::from_json(l.as_bytes()).unwrap().id)
            .collect();
        assert_eq!(ids.len(), 3);
    }
}
