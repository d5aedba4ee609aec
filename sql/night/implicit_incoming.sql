-- Implicit feedback: a staged file's events summed per (user, item). Parameter: the staged Parquet file.
create or replace temp table incoming as
select user_id, item_id, sum(rating) as rating, max(timestamp) as timestamp
from read_parquet(?)
group by user_id, item_id;
