"""Hardware qualification: versioned suites, run rules, environment capture, tamper-evident results.

A qualification run answers "what does this machine carry under the SLOs?" in a form a third party can
trust: a fixed, versioned suite of workloads and run rules, a record of the hardware and software it ran
on (``environment``), optional GPU energy per output token (``power``), and a sha256 manifest of the
results folder (``manifest``) whose root digest pins every file, so an edit after the fact is detected.
"""
