-- The newest successful run: the one every latest_* view reads.
create or replace view latest_run as
with final as (
    select run_id
    from runs
    where status = 'succeeded'
    order by finished_at desc, run_id desc
    limit 1
)
select * from final;
