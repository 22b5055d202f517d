-- Lodging registration (ASM, "lưu trú"): establishments, their desk staff, and guests' stays.
-- Portable SQL as in 0001: TEXT, BIGINT, ms since the epoch, ids made by the hub.

-- Hotels, homestays, overnight boats and long-distance buses (for a bus, a check-in is a boarding).
CREATE TABLE lodging_establishments (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    -- hotel | homestay | overnight_boat | long_distance_bus
    kind TEXT NOT NULL,
    -- the Checkpoint site it belongs to, for statistics
    site TEXT NOT NULL,
    address TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX lodging_establishments_site ON lodging_establishments (site);

-- A lodging_staff user acts for exactly one establishment.
CREATE TABLE lodging_staff (
    username TEXT PRIMARY KEY REFERENCES users (username),
    establishment_id TEXT NOT NULL REFERENCES lodging_establishments (id),
    linked_by TEXT NOT NULL,
    linked_ms BIGINT NOT NULL
);

-- One row per stay (or bus journey). A guest is a citizen (CCCD card QR) or a passport holder.
CREATE TABLE lodging_stays (
    id TEXT PRIMARY KEY,
    establishment_id TEXT NOT NULL REFERENCES lodging_establishments (id),
    -- citizen (nationality VNM) | foreign
    guest_kind TEXT NOT NULL,
    -- 'cccd:<number>' or 'passport:<nationality>:<number>': one active stay per guest and establishment
    guest_key TEXT NOT NULL,
    cccd TEXT,
    passport_number TEXT,
    -- ISO 3166-1 alpha-3
    nationality TEXT NOT NULL,
    -- NFC
    full_name TEXT NOT NULL,
    -- lower case without diacritics, for searches typed either way
    name_folded TEXT NOT NULL,
    -- YYYY-MM-DD
    date_of_birth TEXT NOT NULL,
    -- male | female
    gender TEXT NOT NULL,
    address TEXT,
    room TEXT,
    checkin_ms BIGINT NOT NULL,
    checkout_ms BIGINT,
    created_by TEXT NOT NULL,
    checked_out_by TEXT
);
-- The same guest cannot be checked in twice at once at one establishment (both databases have partial indexes).
CREATE UNIQUE INDEX lodging_stays_active ON lodging_stays (establishment_id, guest_key) WHERE checkout_ms IS NULL;
CREATE INDEX lodging_stays_establishment ON lodging_stays (establishment_id, checkin_ms);
CREATE INDEX lodging_stays_checkin ON lodging_stays (checkin_ms);
CREATE INDEX lodging_stays_cccd ON lodging_stays (cccd);
CREATE INDEX lodging_stays_passport ON lodging_stays (passport_number);
CREATE INDEX lodging_stays_name ON lodging_stays (name_folded);
