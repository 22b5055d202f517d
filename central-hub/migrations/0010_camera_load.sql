-- Protocol 1.3: the rate each camera is really analysed at, and the periods its counts were unreliable because
-- it was analysed below the rate counting needs (the agent overloaded, a low analysis_fps, a slow camera).
ALTER TABLE cameras ADD COLUMN effective_fps DOUBLE PRECISION;
ALTER TABLE cameras ADD COLUMN sampling_fps DOUBLE PRECISION;
ALTER TABLE cameras ADD COLUMN reliable_fps DOUBLE PRECISION;
ALTER TABLE cameras ADD COLUMN degraded BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cameras ADD COLUMN degraded_reason TEXT;
ALTER TABLE cameras ADD COLUMN degraded_since_ms BIGINT;

-- One row per degraded period of a camera, opened by the first `camera_status` that says `degraded` (at its
-- `degraded_since`) and closed by the first that says otherwise, or by the agent going offline. The counts API
-- marks every bucket a period overlaps.
CREATE TABLE camera_degraded (
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    camera TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    -- NULL while the period lasts
    end_ms BIGINT,
    -- overload | configured | source
    reason TEXT NOT NULL,
    -- lowest effective analysis rate reported during the period; -1 when none was
    min_fps DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (site, agent, camera, start_ms)
);
CREATE INDEX camera_degraded_site_start ON camera_degraded (site, start_ms);
