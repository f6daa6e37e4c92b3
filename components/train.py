"""Components of the training steps: two-tower retrieval and the multi-task ranker."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components.image import PROJECT_IMAGE


@dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)
def train_retrieval(
    train: Input[Dataset], spec: Input[Artifact], catalog_uri: str, config_json: str, model: Output[Model]
) -> None:
    """Train the two-tower retrieval model."""
    from flywheel.config.training import parse_training_config
    from flywheel.models.steps import train_retrieval_step

    info = train_retrieval_step(train.path, spec.path, catalog_uri, parse_training_config(config_json), model.path)
    model.metadata.update(info)


@dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)
def train_ranker(
    train: Input[Dataset],
    spec: Input[Artifact],
    retrieval: Input[Model],
    catalog_uri: str,
    config_json: str,
    model: Output[Model],
) -> None:
    """Train the multi-task ranker (it reads the two-tower score of each impression)."""
    from flywheel.config.training import parse_training_config
    from flywheel.models.steps import train_ranker_step

    info = train_ranker_step(
        train.path, spec.path, retrieval.path, catalog_uri, parse_training_config(config_json), model.path
    )
    model.metadata.update(info)
