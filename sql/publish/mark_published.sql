-- The run becomes a published version. Parameters: version, finished_at, n_ratings, n_users, n_items,
-- n_recommendations, device, data_hash, metrics, timings, run_id.
update runs
set status = 'succeeded', version = ?, finished_at = ?, n_ratings = ?, n_users = ?, n_items = ?,
    n_recommendations = ?, device = ?, data_hash = ?, metrics = ?, timings = ?
where run_id = ?;
