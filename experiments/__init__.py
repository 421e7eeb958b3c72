"""Experiments: the paper's grid of runs, and the report that reads them back.

One module per job, each run as `python -m experiments.<module>` from the repository root:

- `grid`: which runs a sweep is made of, where each lives, and whether it already ran.
- `sweep`: the CLI that runs a grid on this machine (slurm/sweep.sh submits the same plan).
- `runs`: reading a sweep's run directories back (config, run.json, accuracy, loss curve).
- `report`: the CLI that turns sweeps into docs/results.md; `tables`, `figures` and `preface` render it.
- `reference`: the published reference results and the reference configs a run is compared with.
- `baselines`: the constant "London" and most-common-answer baselines (also a CLI).
- `accuracy`: the CLI that prints runs' dev accuracy in the evaluation's format.
- `formats`: how numbers are written, shared so the preface prints exactly what the tables print.
"""
