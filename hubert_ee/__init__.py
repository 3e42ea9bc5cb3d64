"""hubert-ee."""
