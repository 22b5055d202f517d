//! `GET /api/live`: server-sent events that tell the web UI something changed (a new alert, a review
//! decision, new counts, an agent or camera status), so pages update as it happens instead of polling.
//! The stream carries hints only; details come from the API, where roles and auditing apply.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use tokio::sync::broadcast::error::RecvError;

use super::{ApiResult, AppState, Session};
use crate::auth::access::WATCHERS;

/// Live updates as `text/event-stream` (operator, supervisor, admin). Each event's name is its kind
/// (`alert`, `review`, `count`, `agent`, `camera`) and its data a JSON object with `site`, `agent` and, for
/// alerts and reviews, `id`. A client that fell behind gets `resync`: reload what it shows.
#[utoipa::path(get, path = "/api/live", tag = "alerts", security(("bearer" = [])),
    responses((status = 200, description = "Server-sent events", content_type = "text/event-stream"),
              (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody)))]
pub async fn live(
    State(s): State<AppState>,
    session: Session,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    session.require(WATCHERS)?;
    let rx = s.ingest.live.subscribe();
    s.metrics.live_clients.inc();
    let guard = LiveClient(s.metrics.clone());
    // The first event tells the client the stream is open, so it can load the current state knowing that
    // anything newer will arrive here.
    let hello = stream::once(async { Ok(Event::default().event("hello").data("{}")) });
    let updates = stream::unfold((rx, guard), |(mut rx, guard)| async move {
        let ev = match rx.recv().await {
            Ok(live) => Event::default()
                .event(live.kind)
                .data(serde_json::to_string(&live).unwrap_or_else(|_| "{}".into())),
            Err(RecvError::Lagged(n)) => Event::default()
                .event("resync")
                .data(format!("{{\"missed\":{n}}}")),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(ev), (rx, guard)))
    });
    Ok(Sse::new(stream::StreamExt::chain(hello, updates))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Counts open streams on the metrics endpoint while a client is connected.
struct LiveClient(std::sync::Arc<crate::metrics::Metrics>);

impl Drop for LiveClient {
    fn drop(&mut self) {
        self.0.live_clients.dec();
    }
}
