"""hubert-ee."""


def load(location):
    """A recognizer from a model folder/file or an MLflow URI: `hubert_ee.load(...).transcribe(...)`."""
    from hubert_ee.inference import load as _load

    return _load(location)
