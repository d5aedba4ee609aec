-- Implicit feedback: the run's interactions by index, each pair's total weight with tonight's events
-- added (is_new: a pair first seen tonight, which yesterday's models never saw).
with current_ratings as (
    select r.user_id, r.item_id, r.rating + coalesce(n.rating, 0) as rating,
           greatest(r.timestamp, coalesce(n.timestamp, r.timestamp)) as timestamp, false as is_new
    from ratings as r
    left join night as n using (user_id, item_id)
    union all
    select user_id, item_id, rating, timestamp, true as is_new
    from night
    anti join ratings using (user_id, item_id)
),
users as (
    select user_id, user_idx from user_index
    union all
    select user_id, user_idx from new_user_index
),
items as (
    select item_id, item_idx from item_index
    union all
    select item_id, item_idx from new_item_index
),
final as (
    select u.user_idx, i.item_idx, c.rating, c.timestamp, c.is_new
    from current_ratings as c
    join users as u using (user_id)
    join items as i using (item_id)
)
select * from final order by user_idx, item_idx
