-- A staged file's latest rating per (user, item) (ties: the later row), next to the current rating of the
-- pair: tonight's so far, else the published one. Parameter: the staged Parquet file.
create or replace temp table incoming as
with file_rows as (
    select user_id, item_id, rating, timestamp
    from read_parquet(?)
    qualify row_number() over (partition by user_id, item_id order by timestamp desc, row_number desc) = 1
)
select b.user_id, b.item_id, b.rating, b.timestamp, coalesce(n.timestamp, r.timestamp) as old_ts
from file_rows as b
left join night as n on n.user_id = b.user_id and n.item_id = b.item_id
left join ratings as r on r.user_id = b.user_id and r.item_id = b.item_id;
