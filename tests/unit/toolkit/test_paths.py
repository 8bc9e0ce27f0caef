from pathlib import Path

from sagedock.toolkit.paths import MlPaths, base_dir


def test_base_dir_defaults_to_opt_ml() -> None:
    assert base_dir({}) == Path("/opt/ml")


def test_base_dir_follows_sagemaker_base_dir() -> None:
    assert base_dir({"SAGEMAKER_BASE_DIR": "/tmp/job/opt/ml"}) == Path("/tmp/job/opt/ml")


def test_contract_paths_hang_off_the_base_dir() -> None:
    paths = MlPaths(Path("/b"))
    assert paths.hyperparameters_file == Path("/b/input/config/hyperparameters.json")
    assert paths.resource_config_file == Path("/b/input/config/resourceconfig.json")
    assert paths.channel_dir("train") == Path("/b/input/data/train")
    assert paths.pipe_path("train", 2) == Path("/b/input/data/train_2")
    assert paths.failure_file == Path("/b/output/failure")
    assert paths.output_data_dir == Path("/b/output/data")
    assert paths.model_code_dir == Path("/b/model/code")
    assert paths.default_checkpoint_dir == Path("/b/checkpoints")
