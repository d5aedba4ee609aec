-- The run's interactions by index, with when each rating was ingested (warm start validates on new ones).
select u.user_idx, i.item_idx, r.rating, r.timestamp, epoch(f.ingested_at) as ingested_at
from ratings as r
join user_index as u using (user_id)
join item_index as i using (item_id)
join ingested_files as f using (file_hash)
order by u.user_idx, i.item_idx;
