insert into ratings select user_id, item_id, rating, timestamp, file_hash from delta;
