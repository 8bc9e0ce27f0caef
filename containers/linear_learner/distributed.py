"""Linear Learner on several hosts: data parallel over ``torch.distributed`` (gloo).

The hosts form one process group, ranked in sorted host order, at the first host on the
toolkit launcher's master port (``SAGEDOCK_MASTER_PORT``, else 7777; host names resolved by
:func:`sagedock.toolkit.launch.hosts.resolve_host`, so two local "hosts" as processes work).
Each host reads its own share of the channels. Every update sums the gradients and row counts
of one mini-batch from each host, so the models take the same step one host would take on
all those rows; a host that has run out of rows takes part with zeros until every host has.
The scaler is fitted on the hosts' samples put together, and the first host chooses the model
and broadcasts its choice, so every host ends with the same model.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist

from sagedock.toolkit.errors import UserError

from .data import MiniBatch, join_batches

if TYPE_CHECKING:
    from sagedock.toolkit.env import TrainingEnv

    from .batched import ParallelLinear, Rows

logger = logging.getLogger(__name__)

#: Seconds the hosts may take to meet (they start at different times).
JOIN_TIMEOUT = 900


@dataclass(frozen=True)
class Group:
    """This host's place among the training hosts."""

    hosts: tuple[str, ...]
    current_host: str

    @property
    def rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def is_master(self) -> bool:
        return self.rank == 0

    def gather_sample(self, sample: MiniBatch | None, count: int) -> MiniBatch:
        """The hosts' scaler samples put together (rank order), at most *count* rows."""
        pieces: list[Any] = [None] * len(self.hosts)
        dist.all_gather_object(pieces, sample)
        found = [p for p in pieces if p is not None]
        if not found:
            raise UserError("No training data on any of the hosts " + ", ".join(self.hosts))
        joined = join_batches(found)
        if joined.num_rows > count:
            joined = MiniBatch(joined.features[:count], joined.label[:count])
        return joined

    def train_epoch(
        self, models: ParallelLinear, batches: Iterable[Rows]
    ) -> tuple[torch.Tensor, int]:
        """One pass: an update per round of mini-batches, until every host has run out.
        Returns each model's summed loss over all hosts' rows, and their count."""
        device = models.device
        total = torch.zeros(models.num_models, device=device, dtype=torch.float64)
        rows_seen = 0
        source: Iterator[Rows] = iter(batches)
        weight_shape = models.weights.permute(1, 0, 2).shape
        bias_shape = models.bias.shape
        while True:
            rows = next(source, None)
            if rows is None:
                grad_w = torch.zeros(weight_shape, device=device)
                grad_b = torch.zeros(bias_shape, device=device)
                loss = torch.zeros(models.num_models, device=device)
                count = 0
            else:
                grad_w, grad_b, loss = models.gradients(rows)
                count = rows.num_rows
            packed = torch.cat(
                [
                    grad_w.reshape(-1),
                    grad_b.reshape(-1),
                    loss.float(),
                    torch.tensor([float(count), float(rows is not None)], device=device),
                ]
            )
            dist.all_reduce(packed)
            if packed[-1].item() == 0:  # no host had a mini-batch left
                return total, rows_seen
            sizes = [grad_w.numel(), grad_b.numel(), models.num_models]
            parts = torch.split(packed[:-2], sizes)
            round_rows = float(packed[-2].item())
            models.apply(parts[0].view(weight_shape), parts[1].view(bias_shape), round_rows)
            total += parts[2].double()
            rows_seen += int(round_rows)

    def sum_losses(self, total: torch.Tensor, count: int) -> tuple[torch.Tensor, int]:
        packed = torch.cat([total.double(), torch.tensor([float(count)], dtype=torch.float64)])
        dist.all_reduce(packed)
        return packed[:-1], int(packed[-1].item())

    def broadcast_choice(self, index: int, threshold: float) -> tuple[int, float]:
        choice: list[Any] = [index, threshold]
        dist.broadcast_object_list(choice, src=0)
        return int(choice[0]), float(choice[1])

    def gather_scores(self, label: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every host's labels and scores, on the first host (the others get theirs back)."""
        pieces: list[Any] = [None] * len(self.hosts)
        dist.all_gather_object(pieces, (label, score))
        if not self.is_master:
            return label, score
        return (
            np.concatenate([p[0] for p in pieces]),
            np.concatenate([p[1] for p in pieces]),
        )


@contextlib.contextmanager
def joined(env: TrainingEnv, hosts: tuple[str, ...]) -> Iterator[Group]:
    """This host in the process group of *hosts*, for the duration of the block."""
    from sagedock.toolkit.launch.hosts import resolve_host
    from sagedock.toolkit.launch.torch_distributed import master_port

    ordered = tuple(sorted(hosts))
    group = Group(ordered, env.current_host)
    address = resolve_host(ordered[0])
    port = master_port(os.environ)
    logger.info(
        "Distributed training with %d hosts: %s (rank %d, master %s:%d)",
        len(ordered),
        ", ".join(ordered),
        group.rank,
        address,
        port,
    )
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://{address}:{port}",
        rank=group.rank,
        world_size=len(ordered),
        timeout=datetime.timedelta(seconds=JOIN_TIMEOUT),
    )
    try:
        yield group
        dist.barrier()
    finally:
        dist.destroy_process_group()
