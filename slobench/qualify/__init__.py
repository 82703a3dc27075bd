"""`slobench qualify`: hardware qualification under versioned run rules.

A qualification run answers "what does this machine carry under the SLOs?" in a form a third party can
trust: a fixed, versioned suite of workloads and run rules (``suite``; minimum duration, minimum requests from
the statistic gated, ``statistics``), VALID/INVALID with reason codes per point (``reasons``), a record of the
hardware and software it ran on (``environment``), optional GPU energy per output token (``power``), and a
sha256 manifest of the results folder (``manifest``) whose root digest pins every file, so an edit after the
fact is detected. Modelled on MLPerf Inference's run rules, MLPerf Endpoints' Pareto curve over fixed
concurrency levels and InferenceX's validity flags (docs/qualify.md). The layer sits above `capacity/` (it
runs capacity searches and fixed-concurrency points) and below the CLI.
"""
