-- Share of the catalog that appears in anyone's list, version by version (the versions still kept).
with per_run as (
    select run_id, count(distinct item_id) as items_recommended
    from recommendations
    group by run_id
),
final as (
    select v.version, v.run_id, v.published_at, p.items_recommended, r.n_items,
           round(p.items_recommended / r.n_items, 4) as coverage
    from versions as v
    join runs as r using (run_id)
    join per_run as p using (run_id)
)
select * from final order by version;
