-- A file's quarantined rows. Parameters: when, the night, the staged quarantine Parquet.
insert into quarantine
select file_hash, path, row_number, reason, raw, ?, ?
from read_parquet(?);
