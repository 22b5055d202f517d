-- Open-set calibration: what each list may cost in false candidates, set by an administrator (defaults from
-- hub.toml [watchlist] until one is set), and the evidence agents send with each candidate.
CREATE TABLE watchlist_policies (
    list TEXT PRIMARY KEY,
    -- share of passers-by not on the list who may raise a candidate on it
    target_fpir DOUBLE PRECISION NOT NULL,
    -- share of listed people the list may miss before the hub warns
    max_fnir DOUBLE PRECISION NOT NULL,
    updated_by TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);

-- JSON of the agent's MatchEvidence ('' for alerts from older agents and lodging check-ins).
ALTER TABLE alerts ADD COLUMN evidence TEXT NOT NULL DEFAULT '';
