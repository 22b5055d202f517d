-- Site occupancy computed at the hub (src/occupancy.rs owns these tables).

-- What an admin or supervisor set for a site: the number of people on site when the setting was made, and
-- an optional daily reset (minutes after local midnight, in the site's fixed UTC offset). Append-only: the
-- newest row of a site is in force from its set_ms on; older rows say what held before (history chart).
CREATE TABLE occupancy_settings (
    id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    starting_occupancy BIGINT NOT NULL,
    reset_minute BIGINT,
    utc_offset_minutes BIGINT NOT NULL,
    set_by TEXT NOT NULL,
    set_ms BIGINT NOT NULL
);
CREATE INDEX occupancy_settings_site ON occupancy_settings (site, set_ms);

-- Every crossing of a site-boundary line, at the agent's timestamp (an event belongs to the period of its
-- own time, however late it arrives). Crossings of lines the agent marks `site_boundary = false` are not
-- kept. flag_missing = 1: the agent (protocol < 1.3) did not say whether the line bounds the site, and the
-- crossing is counted as a boundary crossing (the agents' default).
CREATE TABLE occupancy_crossings (
    event_id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    camera TEXT NOT NULL,
    line TEXT NOT NULL,
    flag_missing BIGINT NOT NULL,
    direction TEXT NOT NULL,
    ts_ms BIGINT NOT NULL
);
CREATE INDEX occupancy_crossings_site_ts ON occupancy_crossings (site, ts_ms);

-- The same crossings summed per UTC hour, so a long period is summed from hours and only its partial
-- first and last hours from single crossings.
CREATE TABLE occupancy_hours (
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    camera TEXT NOT NULL,
    line TEXT NOT NULL,
    flag_missing BIGINT NOT NULL,
    hour_ms BIGINT NOT NULL,
    entries BIGINT NOT NULL,
    exits BIGINT NOT NULL,
    PRIMARY KEY (site, agent, camera, line, flag_missing, hour_ms)
);
CREATE INDEX occupancy_hours_site_hour ON occupancy_hours (site, hour_ms);
