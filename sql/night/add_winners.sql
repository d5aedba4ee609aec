-- This file's rows at least as new as the current rating of their pair. Parameter: the file's number.
insert into night
select user_id, item_id, rating, timestamp, ?
from incoming
where old_ts is null or timestamp >= old_ts;
