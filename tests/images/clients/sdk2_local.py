"""Driven by tests/images/test_sdk_local_mode.py inside a venv holding the SageMaker Python
SDK 2.x: what a user's notebook does in local mode, fit -> deploy -> predict (and batch
transform), against one of our images. Prints one JSON line that the test checks.

Usage: python sdk2_local.py '<json of the scenario>' (keys: image, hosts, train_dir,
output_dir, container_root, hyperparameters, rows, and optionally entry_point + source_dir,
transform_dir, transform_output, framework ("pytorch"), inference).
"""

import json
import sys
from pathlib import Path

from sagemaker.estimator import Estimator
from sagemaker.inputs import TrainingInput
from sagemaker.local import LocalSession
from sagemaker.serializers import CSVSerializer, JSONSerializer

ROLE = "arn:aws:iam::111111111111:role/SageMakerRole"


def estimator(scenario, session):
    common = {
        "image_uri": scenario["image"],
        "role": ROLE,
        "instance_count": scenario["hosts"],
        "instance_type": "local",
        "output_path": "file://" + scenario["output_dir"],
        "sagemaker_session": session,
        "hyperparameters": scenario["hyperparameters"],
    }
    if scenario.get("framework") == "pytorch":
        from sagemaker.pytorch import PyTorch

        return PyTorch(
            entry_point=scenario["entry_point"],
            source_dir=scenario["source_dir"],
            framework_version="2.3",
            py_version="py311",
            # Without a code location, deploy(entry_point=...) asks STS for the account's
            # default bucket even in local mode (local_code uploads nothing to it).
            code_location="s3://sagedock-local-code/pytorch",
            **common,
        )
    if "entry_point" in scenario:
        common.update(entry_point=scenario["entry_point"], source_dir=scenario["source_dir"])
    return Estimator(**common)


def main():
    scenario = json.loads(sys.argv[1])
    Path(scenario["container_root"]).mkdir(parents=True, exist_ok=True)
    session = LocalSession()
    session.config = {"local": {"local_code": True, "container_root": scenario["container_root"]}}
    est = estimator(scenario, session)
    train = TrainingInput("file://" + scenario["train_dir"], content_type="text/csv")
    est.fit({"train": train}, wait=True, logs=True)
    result = {"model_data": est.model_data}

    deploy_args = {"initial_instance_count": 1, "instance_type": "local"}
    if scenario.get("framework") == "pytorch":
        deploy_args.update(entry_point=scenario["inference"], serializer=JSONSerializer())
        payload = scenario["rows"]
    else:
        deploy_args.update(serializer=CSVSerializer())
        payload = scenario["rows"]
    predictor = est.deploy(**deploy_args)
    try:
        answer = predictor.predict(payload)
        # PyTorchPredictor decodes with its NumpyDeserializer; the generic one returns bytes
        if isinstance(answer, bytes):
            result["prediction"] = answer.decode("utf-8")
        else:
            result["prediction"] = json.dumps(answer.tolist())
    finally:
        predictor.delete_endpoint()

    if "transform_dir" in scenario:
        transformer = est.transformer(
            instance_count=1,
            instance_type="local",
            output_path="file://" + scenario["transform_output"],
            accept="text/csv",
            assemble_with="Line",
            # Local mode otherwise reads BatchStrategy from GET /execution-parameters and
            # accepts only "MultiRecord"; we answer the platform docs' "MULTI_RECORD".
            strategy="MultiRecord",
        )
        # logs=False: the SDK reads a transform job's logs from CloudWatch, even in local mode
        transformer.transform(
            "file://" + scenario["transform_dir"],
            content_type="text/csv",
            split_type="Line",
            wait=True,
            logs=False,
        )
        outputs = sorted(Path(scenario["transform_output"]).glob("*.out"))
        result["transform"] = {p.name: p.read_text() for p in outputs}
    print("SCENARIO-RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
