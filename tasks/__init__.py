"""Stage programs that dvc.yaml calls: `python -m tasks.<stage>`. No Prefect in here."""
