-- A file's valid rows (registered as `batch`) next to the current rating of the same pair, if any.
create temp table incoming as
select b.*, r.timestamp as old_ts
from batch as b
left join ratings as r using (user_id, item_id);
