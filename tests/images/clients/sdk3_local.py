"""Driven by tests/images/test_sdk_local_mode.py inside a venv holding the SageMaker Python
SDK 3.x: ``ModelTrainer`` in ``Mode.LOCAL_CONTAINER`` (which starts the training container with
no command, or through the SDK's own driver scripts in script mode), then ``ModelBuilder`` in
local container mode to deploy and predict. Prints one JSON line that the test checks.

Usage: python sdk3_local.py '<json of the scenario>' (keys: image, hosts, train_dir,
container_root, hyperparameters, rows, and optionally entry_point + source_dir).
"""

import json
import sys
from pathlib import Path

from sagemaker.core.local import LocalSession
from sagemaker.train import ModelTrainer
from sagemaker.train.configs import Compute, InputData, SourceCode
from sagemaker.train.model_trainer import Mode

ROLE = "arn:aws:iam::111111111111:role/SageMakerRole"


def train(scenario):
    root = Path(scenario["container_root"])
    root.mkdir(parents=True, exist_ok=True)
    options = {}
    if "entry_point" in scenario:
        options["source_code"] = SourceCode(
            source_dir=scenario["source_dir"], entry_script=scenario["entry_point"]
        )
    trainer = ModelTrainer(
        training_image=scenario["image"],
        training_mode=Mode.LOCAL_CONTAINER,
        role=ROLE,
        compute=Compute(instance_type="local_cpu", instance_count=scenario["hosts"]),
        hyperparameters=scenario["hyperparameters"],
        local_container_root=str(root),
        **options,
    )
    data = InputData(
        channel_name="train", data_source=scenario["train_dir"], content_type="text/csv"
    )
    trainer.train(input_data_config=[data], wait=True, logs=True)
    return root / "compressed_artifacts" / "model.tar.gz"


def predict(scenario, model_data):
    """Deploy with the 3.x local session (``sagemaker.core.local``, where ModelBuilder registers
    its local endpoints): CreateModel -> CreateEndpointConfig -> CreateEndpoint start the serve
    container; InvokeEndpoint sends the CSV rows."""
    session = LocalSession()
    session.config = {"local": {"local_code": True, "container_root": scenario["container_root"]}}
    client, runtime = session.sagemaker_client, session.sagemaker_runtime_client
    client.create_model(
        ModelName="sdk3-model",
        PrimaryContainer={
            "Image": scenario["image"],
            "ModelDataUrl": model_data,
            # 3.x local mode reads Environment unconditionally (KeyError without it)
            "Environment": {},
        },
        ExecutionRoleArn=ROLE,
    )
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": "sdk3-model",
        "InitialInstanceCount": 1,
        "InstanceType": "local",
    }
    client.create_endpoint_config(EndpointConfigName="sdk3-config", ProductionVariants=[variant])
    client.create_endpoint(EndpointName="sdk3-endpoint", EndpointConfigName="sdk3-config")
    try:
        body = "\n".join(",".join(str(v) for v in row) for row in scenario["rows"])
        answer = runtime.invoke_endpoint(
            EndpointName="sdk3-endpoint", Body=body, ContentType="text/csv", Accept="text/csv"
        )
        return answer["Body"].read().decode("utf-8")
    finally:
        client.delete_endpoint(EndpointName="sdk3-endpoint")


def main():
    scenario = json.loads(sys.argv[1])
    model = train(scenario)
    result = {"model_data": "file://" + str(model)}
    result["prediction"] = predict(scenario, result["model_data"])
    print("SCENARIO-RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
