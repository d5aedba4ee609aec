"""collabflow's modelling library: data validation, models, training, scoring. Never imports Prefect."""
