-- Rows of `incoming` at least as new as the current rating of their pair (older ones are superseded:
-- counted, not loaded). Parameter: the file's hash.
insert into ratings
select user_id, item_id, rating, timestamp, ?
from incoming
where old_ts is null or timestamp >= old_ts;
