-- The run's interactions by index: every published rating not replaced tonight, and tonight's winners
-- (is_new: warm start validates on them, the ratings the old models never saw).
with current_ratings as (
    select r.user_id, r.item_id, r.rating, r.timestamp, false as is_new
    from ratings as r
    anti join night using (user_id, item_id)
    union all
    select user_id, item_id, rating, timestamp, true as is_new
    from night
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
