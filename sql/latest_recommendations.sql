-- The newest successful run's top-N lists, with titles when item metadata was ingested.
-- Downstream queries read this view, not the recommendations table.
create or replace view latest_recommendations as
with final as (
    select r.run_id, r.user_id, r.rank, r.item_id, r.score, r.source, i.title
    from recommendations as r
    join latest_run using (run_id)
    left join items as i using (item_id)
)
select * from final;
