-- Identity records, watchlists and the alert review workflow.

-- Citizens keyed by the 12-digit CCCD number (validated by checkpoint-identity before it gets here).
CREATE TABLE persons (
    cccd TEXT PRIMARY KEY,
    full_name TEXT NOT NULL,
    -- lower case without diacritics, for searches typed either way
    name_folded TEXT NOT NULL,
    -- YYYY-MM-DD
    date_of_birth TEXT NOT NULL,
    gender TEXT NOT NULL,
    address TEXT NOT NULL,
    photo BYTEA,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX persons_name ON persons (name_folded);

-- SFace templates of a person's record photos (128 little-endian f32).
CREATE TABLE person_templates (
    id TEXT PRIMARY KEY,
    cccd TEXT NOT NULL,
    embedding BYTEA NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX person_templates_cccd ON person_templates (cccd);

-- Wanted and missing-person entries. An entry links to a record or stands alone (photos only).
CREATE TABLE watchlist_entries (
    id TEXT PRIMARY KEY,
    list TEXT NOT NULL,
    person_cccd TEXT,
    label TEXT NOT NULL,
    case_ref TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    issued_by TEXT NOT NULL,
    expires_ms BIGINT NOT NULL,
    -- '*' for every site, else a JSON array of site ids
    sites TEXT NOT NULL,
    -- how long confirmed alerts of this case keep their snapshot, days
    case_retention_days BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    withdrawn_ms BIGINT
);
CREATE INDEX watchlist_entries_person ON watchlist_entries (person_cccd);

CREATE TABLE watchlist_photos (
    id TEXT PRIMARY KEY,
    entry_id TEXT NOT NULL,
    jpeg BYTEA NOT NULL,
    embedding BYTEA NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX watchlist_photos_entry ON watchlist_photos (entry_id);

-- Every change to the watchlists gets the next version; deltas to agents are built from these rows.
CREATE TABLE watchlist_revisions (
    version BIGINT PRIMARY KEY,
    entry_id TEXT NOT NULL,
    -- add | remove | expire
    op TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);

-- Review decisions: a confirmation needs two different people; a dismissal ends the alert.
CREATE TABLE alert_reviews (
    alert_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    reviewer TEXT NOT NULL,
    -- confirm | dismiss
    decision TEXT NOT NULL,
    note TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (alert_id, seq)
);

-- Dismissed (entry, track) pairs: the same mistake is not raised again for that track.
CREATE TABLE alert_negatives (
    entry_id TEXT NOT NULL,
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    camera TEXT NOT NULL,
    track_id BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (entry_id, site, agent, camera, track_id)
);

-- Alerts also come from lodging check-ins of wanted people, not only from cameras.
ALTER TABLE alerts ADD COLUMN source TEXT NOT NULL DEFAULT 'camera';
ALTER TABLE alerts ADD COLUMN detail TEXT;
