-- Catalog entries set or deleted over the API (PUT/DELETE /v1/catalog/{id}). At start-up they
-- are laid over the entries of the catalog directory: a stored entry replaces a file's entry
-- of the same id, a deletion (source NULL) hides it.
CREATE TABLE catalog_entries (
    id          TEXT    PRIMARY KEY,
    source      TEXT,                      -- the entry's YAML; NULL once deleted
    updated_at  INTEGER NOT NULL,
    updated_by  TEXT    NOT NULL
) STRICT;
