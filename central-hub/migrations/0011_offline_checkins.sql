-- Check-ins a desk recorded while offline and sent when the network came back (issue 17). The browser gives each
-- one an id; a check-in sent twice (the answer to the first was lost) finds the stay made the first time.
ALTER TABLE lodging_stays ADD COLUMN client_id TEXT;
CREATE UNIQUE INDEX lodging_stays_client ON lodging_stays (client_id) WHERE client_id IS NOT NULL;
