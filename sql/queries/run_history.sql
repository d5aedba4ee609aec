-- Every run, newest first, with its validation metrics and the version it became (the run_history view).
with final as (
    select run_id, status, version, started_at, seconds, n_users, n_recommendations, ranker, valid_rmse,
           ndcg_at_10, error
    from run_history
)
select * from final;
