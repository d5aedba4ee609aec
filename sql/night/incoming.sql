-- A staged file's valid rows next to the current rating of the same pair: tonight's so far, else the
-- published one. Parameter: the staged Parquet file.
create or replace temp table incoming as
select b.user_id, b.item_id, b.rating, b.timestamp, coalesce(n.timestamp, r.timestamp) as old_ts
from read_parquet(?) as b
left join night as n on n.user_id = b.user_id and n.item_id = b.item_id
left join ratings as r on r.user_id = b.user_id and r.item_id = b.item_id;
