-- Console sign-ins: the cookie carries a random session id, of which only the sha256 is kept;
-- the session names its token by the token's hash, so revoking the token ends the session.
CREATE TABLE console_sessions (
    id_hash      TEXT    PRIMARY KEY,
    token_hash   TEXT    NOT NULL,
    csrf         TEXT    NOT NULL,          -- what every form of the session must send back
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
