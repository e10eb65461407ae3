"""asv suite of fvit-bench: time, peak memory, energy, CO2 and GPU-hours of the hot paths (bench_cost), and
what the claims conclude per commit: each embedded claim's effect and 95% interval, each group's outcome counts
(bench_verdicts, read from the verdict table the claims suite wrote just before).

Run from the repository root (see asv.conf.json and scripts/nightly.sh):
    asv run --python=same --set-commit-hash $(git rev-parse HEAD)
    asv publish && asv preview
The environment is the existing one (fvit-bench installed in it, editable or not), so what runs is the
installed code: run on a clean checkout of the commit named by --set-commit-hash.
"""
