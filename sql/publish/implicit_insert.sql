-- Implicit feedback: pairs first seen tonight.
insert into ratings
select user_id, item_id, rating, timestamp, file_hash
from delta
anti join ratings using (user_id, item_id);
