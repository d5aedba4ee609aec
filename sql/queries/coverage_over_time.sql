-- Share of the catalog that appears in anyone's list, run by run.
with per_run as (
    select run_id, count(distinct item_id) as items_recommended
    from recommendations
    group by run_id
),
final as (
    select r.run_id, r.started_at, p.items_recommended, r.n_items,
           round(p.items_recommended / r.n_items, 4) as coverage
    from runs as r
    join per_run as p using (run_id)
    where r.status = 'succeeded'
)
select * from final order by started_at;
