-- The night's winning rating per (user, item), built file by file in name order, published as one delta.
-- Same id types as ratings (integers or strings, as the warehouse's first night decided). Each row names
-- its file by number (night_files maps it to the hash): a 64-character hash on every row made the table
-- ~30% larger and spill to disk at ML-10M scale.
create or replace temp table night as
select user_id, item_id, rating, timestamp, cast(null as integer) as file_no
from ratings
limit 0;

create or replace temp table night_files (file_no integer primary key, file_hash varchar not null);
