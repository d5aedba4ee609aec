-- Tonight's winning ratings (a staged Parquet file). Parameter: the file.
create or replace temp table delta as select * from read_parquet(?);
