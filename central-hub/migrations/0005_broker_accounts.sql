-- Agents' broker accounts: the Mosquitto password_file hash, written when the account's password is set
-- (the Argon2 hash in password_hash cannot be turned into Mosquitto's format).
ALTER TABLE users ADD COLUMN broker_hash TEXT;
