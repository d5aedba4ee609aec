-- One user's list from the latest run, with titles (change the id).
with final as (
    select rank, item_id, title, score
    from latest_recommendations
    where user_id = (select min(user_id) from latest_recommendations)
)
select * from final order by rank;
