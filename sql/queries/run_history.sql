-- Every run, newest first, with its validation metrics.
with final as (
    select
        run_id, status, started_at, finished_at, n_users, n_items, n_recommendations,
        cast(metrics->>'valid_rmse' as double) as valid_rmse,
        cast(metrics->>'valid_mae' as double) as valid_mae,
        error
    from runs
)
select * from final order by started_at desc;
