"""Framework images (pytorch, tensorflow, onnxruntime, mxnet): build, train a tiny model in
script mode with the image's own framework, serve it and answer /ping and /invocations.

Every tiny model computes ``y = x0 + x1 + 0.5``, so ``[[1, 2]]`` gives ``[[3.5]]``.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.images import ImageSet
from tests.images.support import (
    detached,
    http,
    run_container,
    wait_for_ping,
    write_tree,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1800)]


@dataclass(frozen=True)
class Framework:
    image: str
    train: str
    inference: str
    saved: str  # a path under the model dir that training must create


FRAMEWORKS = {
    "pytorch": Framework(
        image="pytorch",
        train="""
            import os, torch
            model = torch.nn.Linear(2, 1)
            with torch.no_grad():
                model.weight.fill_(1.0)
                model.bias.fill_(0.5)
            torch.jit.script(model).save(os.path.join(os.environ["SM_MODEL_DIR"], "model.pt"))
            """,
        inference="""
            import os, numpy as np, torch
            def model_fn(model_dir):
                return torch.jit.load(os.path.join(model_dir, "model.pt"))
            def predict_fn(data, model):
                with torch.no_grad():
                    return model(torch.as_tensor(np.asarray(data, dtype=np.float32))).tolist()
            """,
        saved="model.pt",
    ),
    "tensorflow": Framework(
        image="tensorflow",
        train="""
            import os, tensorflow as tf
            class Model(tf.Module):
                @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
                def __call__(self, x):
                    return tf.reduce_sum(x, axis=1, keepdims=True) + 0.5
            tf.saved_model.save(Model(), os.path.join(os.environ["SM_MODEL_DIR"], "1"))
            """,
        inference="""
            import os, numpy as np, tensorflow as tf
            def model_fn(model_dir):
                return tf.saved_model.load(os.path.join(model_dir, "1"))
            def predict_fn(data, model):
                return model(tf.constant(np.asarray(data, dtype=np.float32))).numpy().tolist()
            """,
        saved="1/saved_model.pb",
    ),
    "onnxruntime": Framework(
        image="onnxruntime",
        train="""
            import os, numpy as np, onnx
            from onnx import TensorProto, helper, numpy_helper
            w = numpy_helper.from_array(np.ones((2, 1), np.float32), "w")
            b = numpy_helper.from_array(np.array([0.5], np.float32), "b")
            graph = helper.make_graph(
                [helper.make_node("MatMul", ["x", "w"], ["xw"]),
                 helper.make_node("Add", ["xw", "b"], ["y"])],
                "tiny",
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
                initializer=[w, b],
            )
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
            model.ir_version = 8
            onnx.checker.check_model(model)
            onnx.save(model, os.path.join(os.environ["SM_MODEL_DIR"], "model.onnx"))
            """,
        inference="""
            import os, numpy as np, onnxruntime as ort
            def model_fn(model_dir):
                path = os.path.join(model_dir, "model.onnx")
                return ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            def predict_fn(data, model):
                return model.run(None, {"x": np.asarray(data, dtype=np.float32)})[0].tolist()
            """,
        saved="model.onnx",
    ),
    "mxnet": Framework(
        image="mxnet",
        train="""
            import os, mxnet as mx
            net = mx.gluon.nn.HybridSequential()
            net.add(mx.gluon.nn.Dense(1, in_units=2))
            net.initialize(mx.init.One())
            net[0].bias.set_data(mx.nd.array([0.5]))
            net.hybridize()
            net(mx.nd.ones((1, 2)))
            net.export(os.path.join(os.environ["SM_MODEL_DIR"], "model"))
            """,
        inference="""
            import os, numpy as np, mxnet as mx
            def model_fn(model_dir):
                return mx.gluon.SymbolBlock.imports(
                    os.path.join(model_dir, "model-symbol.json"), ["data"],
                    os.path.join(model_dir, "model-0000.params"))
            def predict_fn(data, model):
                return model(mx.nd.array(np.asarray(data, dtype=np.float32))).asnumpy().tolist()
            """,
        saved="model-symbol.json",
    ),
}


@pytest.fixture(scope="module")
def trained(
    sagedock_images: ImageSet, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[str, Path]]:
    """Per framework: (image tag, model dir), filled by the training test."""
    return {}


@pytest.mark.parametrize("name", list(FRAMEWORKS))
def test_framework_image_trains_a_tiny_model_in_script_mode(
    name: str,
    sagedock_images: ImageSet,
    trained: dict[str, tuple[str, Path]],
    tmp_path: Path,
) -> None:
    framework = FRAMEWORKS[name]
    image = sagedock_images.tag(framework.image)
    tree = write_tree(
        tmp_path / "ml",
        hyperparameters={"sagemaker_program": "train.py"},
        code={"train.py": textwrap.dedent(framework.train)},
    )
    out = run_container(image, "train", volumes={tree: "/opt/ml"}, timeout=600)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert (tree / "model" / framework.saved).exists()
    trained[name] = (image, tree / "model")


def _served_copy(name: str, trained: dict[str, tuple[str, Path]], root: Path) -> tuple[str, Path]:
    """The image and a copy of the model the *name* training test left (skips when it left
    none: that test reports the failure)."""
    if name not in trained:
        pytest.skip(f"the {name} training test did not produce a model")
    image, model_dir = trained[name]
    served = root / "model"
    shutil.copytree(model_dir, served)
    return image, served


def _serves_the_tiny_model(image: str, served: Path) -> None:
    """`serve` in *image* answers /ping and predicts 3.5 for [1, 2], then stops cleanly."""
    with detached(image, "serve", volumes={served: "/opt/ml/model"}, container_port=8080) as box:
        wait_for_ping(box)
        resp = http(
            box.url + "/invocations",
            data=json.dumps([[1.0, 2.0]]).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        assert resp.status == 200, resp.body[:500]
        assert json.loads(resp.body) == [[3.5]]
        assert box.stop(grace=30) == 0, box.logs()[-2000:]


@pytest.mark.parametrize("name", list(FRAMEWORKS))
def test_framework_image_serves_the_tiny_model(
    name: str, trained: dict[str, tuple[str, Path]], tmp_path: Path
) -> None:
    image, served = _served_copy(name, trained, tmp_path)
    (served / "code").mkdir(exist_ok=True)
    (served / "code" / "inference.py").write_text(textwrap.dedent(FRAMEWORKS[name].inference))
    _serves_the_tiny_model(image, served)


@pytest.mark.parametrize("name", list(FRAMEWORKS))
def test_framework_image_serves_the_tiny_model_with_framework_defaults(
    name: str, trained: dict[str, tuple[str, Path]], tmp_path: Path
) -> None:
    """A BYOS user who wrote only train.py: no inference.py, the framework defaults serve."""
    image, served = _served_copy(name, trained, tmp_path)
    assert not (served / "code").exists()
    _serves_the_tiny_model(image, served)
