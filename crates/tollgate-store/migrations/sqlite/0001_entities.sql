-- Every entity is stored as the JSON document the Admin API returns for it.
-- The model (validation, references, uniqueness) is enforced above the store,
-- on the whole configuration, before anything is written.
CREATE TABLE entities (
    kind       TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    body       TEXT    NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX entities_created ON entities (kind, created_at, id);
