"""The per-host /opt/ml config files, channel shares per host, metrics from log lines."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sagedock.toolkit.local.layout import checkpoint_config, input_data_config, resource_config
from sagedock.toolkit.local.locations import DataObject
from sagedock.toolkit.local.metrics import MetricCollector, match_metrics
from sagedock.toolkit.local.spec import parse_training_job
from sagedock.toolkit.local.spec.training import InputChannel, MetricDefinition
from sagedock.toolkit.local.staging import share_of


def spec(**overrides: Any) -> Any:
    doc: dict[str, Any] = {
        "TrainingJobName": "j",
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "ContentType": "text/csv",
                "InputMode": "Pipe",
                "RecordWrapperType": "RecordIO",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": "s3://bucket/t",
                        "S3DataDistributionType": "ShardedByS3Key",
                    }
                },
            },
            {
                "ChannelName": "validation",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bucket/v"}
                },
            },
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/o"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 3},
    }
    doc.update(overrides)
    return parse_training_job(doc)


def test_resourceconfig_is_written_as_sagemaker_writes_it() -> None:
    assert resource_config(spec(), "algo-2", network_interface="eth0") == {
        "current_host": "algo-2",
        "current_instance_type": "ml.m5.xlarge",
        "current_group_name": "homogeneousCluster",
        "hosts": ["algo-1", "algo-2", "algo-3"],
        "instance_groups": [
            {
                "instance_group_name": "homogeneousCluster",
                "instance_type": "ml.m5.xlarge",
                "hosts": ["algo-1", "algo-2", "algo-3"],
            }
        ],
        "network_interface_name": "eth0",
    }


def test_inputdataconfig_lists_every_channel_with_its_modes() -> None:
    assert input_data_config(spec(), "algo-1") == {
        "train": {
            "ContentType": "text/csv",
            "TrainingInputMode": "Pipe",
            "S3DistributionType": "ShardedByS3Key",
            "RecordWrapperType": "RecordIO",
        },
        "validation": {
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        },
    }


def test_checkpointconfig_only_exists_with_a_checkpoint_uri() -> None:
    assert checkpoint_config(spec(), "/opt/ml/checkpoints") is None
    with_ckpt = spec(CheckpointConfig={"S3Uri": "s3://bucket/ck"})
    assert checkpoint_config(with_ckpt, "/opt/ml/checkpoints") == {
        "LocalPath": "/opt/ml/checkpoints",
        "S3Uri": "s3://bucket/ck",
    }


def _channel(distribution: str, seed: int | None = None) -> InputChannel:
    return InputChannel("c", "/d", distribution=distribution, shuffle_seed=seed)


objects_st = st.lists(st.integers(0, 10_000), unique=True, max_size=40).map(
    lambda ns: [DataObject(f"/d/{n}", f"{n}") for n in sorted(ns)]
)


@given(
    objects=objects_st,
    hosts=st.integers(1, 6),
    seed=st.none() | st.integers(0, 99),
    epoch=st.integers(0, 3),
)
def test_sharded_channels_give_each_object_to_exactly_one_host(
    objects: list[DataObject], hosts: int, seed: int | None, epoch: int
) -> None:
    channel = _channel("ShardedByS3Key", seed)
    receivers = [f"algo-{i}" for i in range(1, hosts + 1)]
    shares = [share_of(objects, channel, receivers, host, epoch) for host in receivers]
    flat = [o for share in shares for o in share]
    assert sorted(o.relative for o in flat) == sorted(o.relative for o in objects)
    assert max(len(s) for s in shares) - min(len(s) for s in shares) <= 1


@given(objects=objects_st, hosts=st.integers(1, 4))
def test_fully_replicated_channels_give_every_host_everything_in_order(
    objects: list[DataObject], hosts: int
) -> None:
    channel = _channel("FullyReplicated")
    receivers = [f"algo-{i}" for i in range(1, hosts + 1)]
    for host in receivers:
        assert share_of(objects, channel, receivers, host) == objects


def test_a_channel_limited_to_instance_groups_is_sharded_among_their_hosts_only() -> None:
    doc = {
        "ResourceConfig": {
            "InstanceGroups": [
                {"InstanceGroupName": "a", "InstanceType": "ml.m5.large", "InstanceCount": 2},
                {"InstanceGroupName": "b", "InstanceType": "ml.c5.xlarge", "InstanceCount": 2},
            ]
        },
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": "s3://bucket/t",
                        "S3DataDistributionType": "ShardedByS3Key",
                        "InstanceGroupNames": ["b"],
                    }
                },
            }
        ],
    }
    job = spec(**doc)
    (channel,) = job.channels
    receivers = job.hosts_receiving(channel)
    assert receivers == ("algo-3", "algo-4")
    objects = list(range(8))
    shares = {h: share_of(objects, channel, receivers, h) for h in job.hosts}
    assert shares == {"algo-1": [], "algo-2": [], "algo-3": [0, 2, 4, 6], "algo-4": [1, 3, 5, 7]}


def test_shuffle_is_seeded_and_differs_between_epochs() -> None:
    objects = [DataObject(f"/d/{n}", f"{n:03d}") for n in range(50)]
    channel = _channel("FullyReplicated", seed=7)
    epoch0 = share_of(objects, channel, ["algo-1"], "algo-1", epoch=0)
    assert epoch0 == share_of(objects, channel, ["algo-1"], "algo-1", epoch=0)
    assert epoch0 != objects
    assert epoch0 != share_of(objects, channel, ["algo-1"], "algo-1", epoch=1)


def test_metric_values_come_from_the_first_group_or_the_whole_match() -> None:
    defs = [
        MetricDefinition("rmse", r"validation-rmse:([0-9.]+)"),
        MetricDefinition("n", r"\d+(?= rows)"),
    ]
    line = "[3]#011train-rmse:0.5#011validation-rmse:0.25 after 1200 rows"
    assert match_metrics(defs, line) == [("rmse", 0.25), ("n", 1200.0)]


def test_final_metrics_keep_the_last_value_of_each_metric() -> None:
    collector = MetricCollector([MetricDefinition("loss", r"loss=([0-9.]+)")])
    for i, value in enumerate(["0.9", "0.5", "nan?", "0.2"]):
        collector.feed(f"epoch {i} loss={value}", f"t{i}")
    assert collector.final() == [{"MetricName": "loss", "Value": 0.2, "Timestamp": "t3"}]
