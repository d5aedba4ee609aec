-- The newest successful run's similar items, with titles when item metadata was ingested.
create or replace view latest_similar_items as
with final as (
    select s.run_id, s.item_id, a.title, s.rank, s.similar_item_id, b.title as similar_title, s.similarity
    from similar_items as s
    join latest_run using (run_id)
    left join items as a on a.item_id = s.item_id
    left join items as b on b.item_id = s.similar_item_id
)
select * from final;
