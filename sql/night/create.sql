-- The night's winning rating per (user, item), built file by file in name order, published as one delta.
-- Same columns and id types as ratings (integers or strings, as the warehouse's first night decided).
create or replace temp table night as
select user_id, item_id, rating, timestamp, file_hash
from ratings
limit 0;
