-- One user's list from the latest run (change the id).
with final as (
    select rank, item_id, score
    from latest_recommendations
    where user_id = 1
)
select * from final order by rank;
