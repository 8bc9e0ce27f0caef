"""Run by tests/integration/toolkit/local/test_sdk_requests.py with the Python of a venv that
holds the SageMaker Python SDK 2.x (not sagedock): builds a training job, a model with its
endpoint, an invocation and a batch transform exactly as the SDK does, and writes each
request the SDK handed to boto3 as JSON.

Every boto3 call is recorded before botocore builds the HTTP request (so botocore's own
parameter validation has passed it) and answered here with the smallest response the SDK
reads: nothing leaves the machine.

argv[1]: a JSON scenario (image, bucket, train/validation/batch URIs, out folder).
"""

from __future__ import annotations

import copy
import io
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
from botocore.response import StreamingBody

ROLE = "arn:aws:iam::111122223333:role/service-role/sagedock-test"
ACCOUNT = "111122223333"


def main() -> None:
    scenario = json.loads(sys.argv[1])
    out = Path(scenario["out"])
    out.mkdir(parents=True, exist_ok=True)
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, copy.deepcopy(params)))

    def answer(model: Any, **_: Any) -> tuple[Any, dict[str, Any]]:
        # Returning a response from before-call stops botocore from sending the request.
        arn = f"arn:aws:sagemaker:us-west-2:{ACCOUNT}:{model.name}/recorded"
        parsed: dict[str, Any] = {
            "CreateTrainingJob": {"TrainingJobArn": arn},
            "CreateModel": {"ModelArn": arn},
            "CreateEndpointConfig": {"EndpointConfigArn": arn},
            "CreateEndpoint": {"EndpointArn": arn},
            "CreateTransformJob": {"TransformJobArn": arn},
            "InvokeEndpoint": {
                "Body": StreamingBody(io.BytesIO(b"0.5\n"), 4),
                "ContentType": "text/csv",
            },
            "GetCallerIdentity": {"Account": ACCOUNT, "Arn": ROLE, "UserId": "test"},
        }.get(model.name, {})
        return SimpleNamespace(status_code=200, headers={}, raw=None), parsed

    boto_session = boto3.Session(region_name="us-west-2")
    boto_session.events.register("before-parameter-build", record)
    boto_session.events.register("before-call", answer)

    from sagemaker.deserializers import CSVDeserializer
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput
    from sagemaker.model import Model
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import CSVSerializer
    from sagemaker.session import Session

    session = Session(boto_session=boto_session, default_bucket=scenario["bucket"])
    bucket = scenario["bucket"]

    estimator = Estimator(
        image_uri=scenario["image"],
        role=ROLE,
        instance_count=2,
        instance_type="ml.m5.xlarge",
        output_path=f"s3://{bucket}/out",
        hyperparameters=scenario["hyperparameters"],
        max_run=900,
        sagemaker_session=session,
    )
    estimator.fit(
        {
            "train": TrainingInput(
                scenario["train"], distribution="ShardedByS3Key", content_type="text/csv"
            ),
            "validation": TrainingInput(scenario["validation"], content_type="text/csv"),
        },
        job_name=scenario["job"],
        wait=False,
        logs=False,
    )

    model = Model(
        image_uri=scenario["image"],
        model_data=f"s3://{bucket}/out/{scenario['job']}/output/model.tar.gz",
        role=ROLE,
        name=scenario["model"],
        env={"SAGEMAKER_MODEL_SERVER_WORKERS": "1"},
        sagemaker_session=session,
    )
    model.deploy(
        initial_instance_count=1,
        instance_type="ml.m5.large",
        endpoint_name=scenario["endpoint"],
        wait=False,
    )
    predictor = Predictor(
        scenario["endpoint"],
        sagemaker_session=session,
        serializer=CSVSerializer(),
        deserializer=CSVDeserializer(),
    )
    print("recorded answer:", predictor.predict(scenario["rows"]))

    transformer = model.transformer(
        instance_count=1,
        instance_type="ml.m5.large",
        strategy="MultiRecord",
        assemble_with="Line",
        output_path=f"s3://{bucket}/batch-out",
        accept="text/csv",
        max_payload=1,
    )
    transformer.transform(
        scenario["batch"],
        content_type="text/csv",
        split_type="Line",
        job_name=scenario["transform"],
        wait=False,
        logs=False,
    )

    by_name: dict[str, list[dict[str, Any]]] = {}
    for name, params in calls:
        by_name.setdefault(name, []).append(params)
    print("recorded calls:", [name for name, _ in calls])
    invoke = dict(by_name["InvokeEndpoint"][0])
    body = invoke["Body"]
    invoke["Body"] = body.decode("utf-8") if isinstance(body, bytes) else body
    documents = {
        "train.json": by_name["CreateTrainingJob"][0],
        "model.json": {
            "Model": by_name["CreateModel"][0],
            "EndpointConfig": by_name["CreateEndpointConfig"][0],
            "Endpoint": by_name["CreateEndpoint"][0],
        },
        "invoke.json": invoke,
        "transform-model.json": by_name["CreateModel"][-1],
        "transform.json": by_name["CreateTransformJob"][0],
    }
    for file_name, document in documents.items():
        (out / file_name).write_text(json.dumps(document, indent=2))
    print("SCENARIO-RESULT " + json.dumps({"calls": [name for name, _ in calls]}))


if __name__ == "__main__":
    main()
