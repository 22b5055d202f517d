-- Core schema: events, agent and camera health, counts, users, sessions, the audit chain.
-- One file for SQLite and PostgreSQL: only types both understand (TEXT, BIGINT, DOUBLE PRECISION, BYTEA),
-- times as milliseconds since the epoch, flags as 0/1, ids made by the hub, upserts with ON CONFLICT.

-- Every event as received; the id is the agents' idempotency key. Alert snapshots live in `alerts`.
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts_ms BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX events_site_kind_ts ON events (site, kind, ts_ms);

-- Messages refused at ingest, so an operator can see what a broken agent sends (payloads are not kept).
CREATE TABLE ingest_rejects (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    received_ms BIGINT NOT NULL
);

CREATE TABLE agents (
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    -- online | offline | stale
    state TEXT NOT NULL,
    version TEXT NOT NULL,
    cameras TEXT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    state_since_ms BIGINT NOT NULL,
    watchlist_version BIGINT NOT NULL,
    watchlist_needs_full BIGINT NOT NULL,
    watchlist_error TEXT,
    PRIMARY KEY (site, agent)
);

CREATE TABLE cameras (
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    camera TEXT NOT NULL,
    state TEXT NOT NULL,
    fps DOUBLE PRECISION,
    detail TEXT,
    reconnects BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (site, agent, camera)
);

-- Entries and exits per line per hour and per local day (bucket_start_ms is the bucket's first instant).
CREATE TABLE counts (
    site TEXT NOT NULL,
    camera TEXT NOT NULL,
    line TEXT NOT NULL,
    bucket TEXT NOT NULL,
    bucket_start_ms BIGINT NOT NULL,
    entries BIGINT NOT NULL,
    exits BIGINT NOT NULL,
    PRIMARY KEY (site, camera, line, bucket, bucket_start_ms)
);

-- The latest totals per line, for "now" on the dashboard.
CREATE TABLE line_state (
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    camera TEXT NOT NULL,
    line TEXT NOT NULL,
    total_entries BIGINT NOT NULL,
    total_exits BIGINT NOT NULL,
    occupancy BIGINT NOT NULL,
    ts_ms BIGINT NOT NULL,
    PRIMARY KEY (site, agent, camera, line)
);

-- Health alerts raised by the hub itself (an agent gone silent).
CREATE TABLE system_alerts (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    detail TEXT NOT NULL,
    raised_ms BIGINT NOT NULL,
    cleared_ms BIGINT
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    active BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);

-- Bearer tokens are stored hashed: a stolen database holds no usable session.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);

-- Append-only, hash-chained: hash = sha256(prev_hash and this row's fields); see src/audit.rs.
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    ts_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

-- Candidate watchlist matches from the agents. A match is only a candidate until people confirm it.
CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    camera TEXT NOT NULL,
    track_id BIGINT NOT NULL,
    list TEXT NOT NULL,
    entry_id TEXT NOT NULL,
    similarity DOUBLE PRECISION NOT NULL,
    threshold DOUBLE PRECISION NOT NULL,
    votes BIGINT NOT NULL,
    faces_used BIGINT NOT NULL,
    watchlist_version BIGINT NOT NULL,
    ts_ms BIGINT NOT NULL,
    stream_time_s DOUBLE PRECISION NOT NULL,
    models TEXT NOT NULL,
    snapshot BYTEA,
    snapshot_deleted_ms BIGINT,
    -- candidate | confirmed_once | confirmed | dismissed
    status TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX alerts_status_ts ON alerts (status, ts_ms);
