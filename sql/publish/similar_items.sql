-- The night's similar items. Parameters: the run id, the Parquet file.
insert into similar_items
select ?, item_id, rank, similar_item_id, similarity
from read_parquet(?);
