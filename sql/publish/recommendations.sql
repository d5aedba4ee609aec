-- One Parquet part of the night's lists. Parameters: the run id, the part.
insert into recommendations (run_id, user_id, rank, item_id, score, source)
select ?, user_id, rank, item_id, score, source
from read_parquet(?);
