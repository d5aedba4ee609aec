-- The latest published version and the run whose lists it serves: the one every latest_* view reads.
-- Latest means the highest version (assigned last + 1 inside each publish), never the newest clock time.
create or replace view latest_run as
with final as (
    select run_id, version, kind, published_at
    from versions
    order by version desc
    limit 1
)
select * from final;
