-- Data tests on a run's recommendations before they are published. Each check must return zero rows;
-- any row rejects the run and keeps the previous lists live. `candidate_recommendations` is the run
-- being published; getvariable('top_n') its list length, getvariable('min_item_ratings') the least ratings an
-- item needs to be recommended; cold_users the users known only from the users table.

-- check: seen_items_recommended
select c.user_id, c.item_id
from candidate_recommendations as c
join ratings using (user_id, item_id);

-- check: duplicate_ranks
select user_id, rank, count(*) as n
from candidate_recommendations
group by user_id, rank
having count(*) > 1;

-- check: duplicate_items
select user_id, item_id, count(*) as n
from candidate_recommendations
group by user_id, item_id
having count(*) > 1;

-- check: null_scores
select *
from candidate_recommendations
where score is null or isnan(score) or isinf(score) or user_id is null or item_id is null or rank is null;

-- check: unknown_ids
select 'user' as kind, user_id as id
from candidate_recommendations
where user_id not in (select user_id from user_index) and source in ('model', 'baseline')
union all
select 'user' as kind, user_id as id
from candidate_recommendations
where source not in ('model', 'baseline') and user_id not in (select user_id from cold_users)
union all
select 'item' as kind, item_id as id from candidate_recommendations anti join item_index using (item_id);

-- check: ranks_out_of_range
select *
from candidate_recommendations
where rank < 1 or rank > getvariable('top_n');

-- check: wrong_row_counts
with eligible as (
    select item_id
    from ratings
    group by item_id
    having count(*) >= getvariable('min_item_ratings')
),
expected as (
    select r.user_id, least(getvariable('top_n'), (select count(*) from eligible) - count(e.item_id)) as n
    from ratings as r
    left join eligible as e using (item_id)
    group by r.user_id
    union all
    select user_id, least(getvariable('top_n'), (select count(*) from eligible)) as n
    from cold_users
),
got as (
    select user_id, count(*) as n
    from candidate_recommendations
    group by user_id
),
final as (
    select e.user_id, e.n as expected, coalesce(g.n, 0) as got
    from expected as e
    full outer join got as g using (user_id)
    where coalesce(g.n, 0) <> coalesce(e.n, 0)
)
select * from final;

-- check: similar_items_include_self
select item_id, rank
from similar_items
where run_id = (select any_value(run_id) from candidate_recommendations) and item_id = similar_item_id;
