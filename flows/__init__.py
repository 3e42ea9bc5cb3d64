"""Prefect flows over the DVC pipeline (thin: the graph and the commands come from dvc.yaml)."""
