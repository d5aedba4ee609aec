-- collabflow warehouse tables. Idempotent: applied to the writer's state database at the start of every
-- run; each publish copies the state into the served snapshot (collabflow.duckdb), so readers see the same.
-- Raw ids everywhere users look; *_idx columns are the model's contiguous indices.

create table if not exists warehouse_meta (  -- layout version and other facts about the warehouse itself
    key   varchar primary key,
    value varchar not null
);

create table if not exists ingested_files (
    file_hash        varchar primary key,   -- sha256 of the file's bytes: the same content is never ingested twice
    path             varchar not null,      -- absolute path it was read from
    rows_read        bigint not null,       -- = rows_loaded + rows_quarantined + rows_superseded
    rows_loaded      bigint not null,       -- rows that became the current rating of their (user, item)
    rows_quarantined bigint not null,       -- rows that failed validation (see quarantine)
    rows_superseded  bigint not null,       -- valid rows beaten by a later rating of the same pair
    parquet_path     varchar not null,      -- durable copy of the file's valid rows, relative to the warehouse
    ingested_at      timestamptz not null,
    run_id           varchar                -- the night that ingested (and published) it
);

create table if not exists inbox_ledger (    -- a cache: each inbox path as last read, so known files skip unread
    path      varchar primary key,
    size      bigint not null,
    mtime_ns  bigint not null,
    inode     bigint not null,
    file_hash varchar not null,
    seen_at   timestamptz not null
);

create table if not exists refused_files (   -- files refused as a whole: skipped, with a warning, until their bytes change
    file_hash  varchar primary key,
    path       varchar not null,
    reason     varchar not null,
    refused_at timestamptz not null,
    run_id     varchar                          -- the night that refused it
);

create table if not exists quarantine (     -- rows that were not loaded, and why
    file_hash      varchar not null,
    path           varchar not null,
    row_number     bigint not null,         -- 1-based data row in the file (header excluded)
    reason         varchar not null,
    raw            varchar not null,        -- the row's text (first 500 characters)
    quarantined_at timestamptz not null,
    run_id         varchar                  -- the night that read the file
);

create table if not exists runs (
    run_id            varchar primary key,
    seq               bigint,               -- 1, 2, 3, ... in the order runs started (whatever the clock says)
    version           bigint,               -- the published version this night became (null if never published)
    status            varchar not null      -- store.runs.STATUSES; warehouses created before 0.2 lack the check
                      check (status in ('running', 'succeeded', 'failed', 'rejected', 'abandoned')),
    started_at        timestamptz not null,
    finished_at       timestamptz,
    error             varchar,
    source            varchar,
    n_ratings         bigint,
    n_users           bigint,
    n_items           bigint,
    n_recommendations bigint,
    device            varchar,
    config            json,
    config_hash       varchar,
    data_hash         varchar,
    metrics           json,                 -- e.g. metrics->>'valid_rmse'
    timings           json,                 -- seconds per step
    versions          json
);

create table if not exists versions (       -- the published versions: "latest" is the highest, never the newest clock
    version      bigint primary key,         -- last + 1, assigned inside the publish
    run_id       varchar not null,           -- whose lists this version serves
    kind         varchar not null check (kind in ('night', 'rollback')),
    published_at timestamptz not null
);

create table if not exists evaluations (    -- `collabflow evaluate` results, long format
    evaluation_id varchar not null,
    created_at    timestamptz not null,
    split         varchar not null,          -- random | temporal | leave-last | files
    model         varchar not null,          -- a model or baseline name, or 'published'
    metric        varchar not null,          -- rmse, mae, ndcg_at_10, ...
    value         double,
    details       json                       -- split parameters, file paths, config
);

