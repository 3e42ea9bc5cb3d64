"""MLflow "models from code" entry point: the registry logs this file instead of a pickle."""

from mlflow.models import set_model

from hubert_ee.registry import HubertEEPyfunc

set_model(HubertEEPyfunc())
