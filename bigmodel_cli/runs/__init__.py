"""A run's life on disk: run.json and metrics.json (records.py, written by a Hydra callback), failed
jobs of a run or sweep (failures.py), which checkpoint resume= continues from (resume.py), the
hand-off of a job to its DDP ranks (ddp_job.py) and run-directory errors (dir_errors.py)."""
