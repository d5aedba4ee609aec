-- Items that appear in the most users' lists in the latest run.
with counts as (
    select item_id, any_value(title) as title, count(*) as n_users, avg(rank) as mean_rank
    from latest_recommendations
    group by item_id
),
final as (
    select * from counts order by n_users desc, item_id limit 20
)
select * from final;
