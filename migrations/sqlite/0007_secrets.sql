-- Secrets set by the operator (`csmp secret set`, `PUT /v1/secrets/{name}`), encrypted with
-- XChaCha20-Poly1305 under the master key; the name is the associated data, so a value
-- cannot be moved to another name. The master key itself is never stored here.
CREATE TABLE secrets (
    name        TEXT    PRIMARY KEY,
    nonce       BLOB    NOT NULL,           -- 24 random bytes per value
    ciphertext  BLOB    NOT NULL,           -- value + 16-byte tag
    key_id      TEXT    NOT NULL,           -- which master key: first 16 hex of its sha256
    set_by      TEXT    NOT NULL,           -- `cli` or the admin token's id
    set_at      INTEGER NOT NULL
) STRICT;
