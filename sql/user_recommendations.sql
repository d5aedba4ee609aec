-- One row per user: the latest list as arrays (ids, titles, scores), best first.
create or replace view user_recommendations as
with final as (
    select
        user_id,
        any_value(run_id) as run_id,
        list(item_id order by rank) as item_ids,
        list(title order by rank) as titles,
        list(score order by rank) as scores
    from latest_recommendations
    group by user_id
)
select * from final;
