-- Which exam staff run which session: exam staff check in, decide and read only the sessions they run
-- (created, or were assigned to by a supervisor or admin).
CREATE TABLE exam_session_staff (
    session_id TEXT NOT NULL REFERENCES exam_sessions (id),
    username TEXT NOT NULL,
    assigned_by TEXT NOT NULL,
    assigned_ms BIGINT NOT NULL,
    PRIMARY KEY (session_id, username)
);
CREATE INDEX exam_session_staff_user ON exam_session_staff (username);

-- The keyed audit chain, one row per key epoch. Rows of audit_log from from_seq on (until the next epoch)
-- are HMAC-SHA256 under the key whose id is key_id; that key lives outside the database (hub.toml
-- [audit] key_file). Rows before the first epoch were written by older hubs with the unkeyed rule.
-- tag = HMAC(key, epoch, from_seq, key_id): moving the switch-over point needs the key.
CREATE TABLE audit_epochs (
    epoch BIGINT PRIMARY KEY,
    from_seq BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
