-- Exams: sessions (a subject at a venue in a shift), the candidates registered for them by CCCD, and every
-- check-in decision (1:1 face comparison or a manual decision), kept as history: the latest one counts.
-- Live photos taken at the door are never stored, only the decision and the similarity.

CREATE TABLE exam_sessions (
    id TEXT PRIMARY KEY,
    -- school | driving_centre
    venue_kind TEXT NOT NULL,
    venue TEXT NOT NULL,
    subject TEXT NOT NULL,
    -- free text, e.g. 'Ca 1 (7:30)'
    shift TEXT NOT NULL,
    starts_ms BIGINT NOT NULL,
    -- NULL: the hub's [faces] verify_threshold at the time of each check-in
    verify_threshold DOUBLE PRECISION,
    created_by TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX exam_sessions_starts ON exam_sessions (starts_ms);

-- A CCCD appears once per session, and a candidate number (SBD) belongs to one CCCD per session.
CREATE TABLE exam_candidates (
    session_id TEXT NOT NULL REFERENCES exam_sessions (id),
    cccd TEXT NOT NULL,
    candidate_no TEXT NOT NULL,
    registered_by TEXT NOT NULL,
    registered_ms BIGINT NOT NULL,
    PRIMARY KEY (session_id, cccd)
);
CREATE UNIQUE INDEX exam_candidates_number ON exam_candidates (session_id, candidate_no);

-- Every decision about a candidate, in order (seq 1, 2, ... per candidate); the highest seq is the current one.
CREATE TABLE exam_checkins (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES exam_sessions (id),
    cccd TEXT NOT NULL,
    seq BIGINT NOT NULL,
    -- verified | rejected
    result TEXT NOT NULL,
    -- face | manual
    method TEXT NOT NULL,
    -- face only: best cosine similarity and the threshold it was judged at
    similarity DOUBLE PRECISION,
    threshold DOUBLE PRECISION,
    -- manual only: why
    reason TEXT,
    decided_by TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE UNIQUE INDEX exam_checkins_candidate_seq ON exam_checkins (session_id, cccd, seq);
