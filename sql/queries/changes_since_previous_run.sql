-- What changed between the two latest published versions: per user, items kept, added and dropped.
with ranked as (
    select run_id, row_number() over (order by version desc) as recency
    from versions
),
latest as (
    select user_id, item_id from recommendations where run_id = (select run_id from ranked where recency = 1)
),
previous as (
    select user_id, item_id from recommendations where run_id = (select run_id from ranked where recency = 2)
),
paired as (
    select coalesce(l.user_id, p.user_id) as user_id, l.item_id as new_item, p.item_id as old_item
    from latest as l
    full outer join previous as p on l.user_id = p.user_id and l.item_id = p.item_id
),
final as (
    select
        user_id,
        count(new_item) filter (where old_item is not null) as kept,
        count(new_item) filter (where old_item is null) as added,
        count(old_item) filter (where new_item is null) as dropped
    from paired
    group by user_id
)
select * from final order by added desc, user_id;
