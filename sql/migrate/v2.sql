-- From the single-file layout (collabflow.duckdb written in place, before 0.2) to a state database with a
-- version log. Applied once to a copy of the old file; schema.sql then adds the new tables.
drop view if exists latest_recommendations;
drop view if exists user_recommendations;
drop view if exists latest_similar_items;
drop view if exists latest_run;
drop view if exists run_history;
drop view if exists cold_users;

create table runs_v2 (
    run_id            varchar primary key,
    seq               bigint,
    version           bigint,
    status            varchar not null
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
    metrics           json,
    timings           json,
    versions          json
);

insert into runs_v2
select run_id, row_number() over (order by started_at, run_id), null, status, started_at, finished_at, error,
       source, n_ratings, n_users, n_items, n_recommendations, device, config, config_hash, data_hash, metrics,
       timings, versions
from runs;

drop table runs;
alter table runs_v2 rename to runs;

create table versions (
    version      bigint primary key,
    run_id       varchar not null,
    kind         varchar not null check (kind in ('night', 'rollback')),
    published_at timestamptz not null
);

insert into versions
select row_number() over (order by finished_at, run_id), run_id, 'night', finished_at
from runs
where status = 'succeeded';

update runs set version = v.version from versions as v where runs.run_id = v.run_id;

alter table ingested_files add column if not exists run_id varchar;
alter table quarantine add column if not exists run_id varchar;
