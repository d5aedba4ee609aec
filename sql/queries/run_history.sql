-- Every run, newest first, with its validation metrics (the run_history view).
with final as (
    select run_id, status, started_at, seconds, n_users, n_recommendations, ranker, valid_rmse, ndcg_at_10, error
    from run_history
)
select * from final;
