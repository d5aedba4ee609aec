-- Each user index's raw id, published and new.
with final as (
    select user_idx, user_id from user_index
    union all
    select user_idx, user_id from new_user_index
)
select * from final order by user_idx
