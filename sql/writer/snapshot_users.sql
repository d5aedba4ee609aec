select user_idx, user_id from user_index order by user_idx;
