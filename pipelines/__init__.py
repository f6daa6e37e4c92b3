"""KFP v2 pipelines: training, evaluation, retraining; compiled to YAML, run locally by kfp.local."""
