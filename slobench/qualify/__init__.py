"""`slobench qualify`: hardware qualification under versioned run rules (issue 14).

Modelled on MLPerf Inference's run rules (minimum duration, minimum queries, early stopping), MLPerf
Endpoints' Pareto curve over fixed concurrency levels and InferenceX's validity flags. The layer sits above
`capacity/` (it runs capacity searches and fixed-concurrency points) and below the CLI.
"""
