"""The training loop's view of the processes it runs in: one (exactly today's loop) or several
launched by ``accelerate launch`` from an accelerate config file (DDP or DeepSpeed ZeRO-1/2; FSDP
and ZeRO-3 are refused, see :meth:`AcceleratedRunner.prepare`).

Several processes split every fixed *global* batch by rows, so ``batch_size`` keeps its meaning
(examples per optimizer step) whatever the number of processes, and the batches, their order and
their padding are the ones a single process would use: the reference cache, the utility guard and
the seeded batch order stay valid. Each process weights its loss by its share of the rows times the
number of processes; the gradient average that DDP (or FSDP/ZeRO's reduce-scatter) performs then
equals the gradient of the global per-example mean. That is exact for losses that are means over
sequences (NPO, SimNPO's forget terms); a mean over tokens (NLL, KL, RMU) is averaged per process,
which equals the single-process value only when the shards hold the same number of target tokens.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from formless.errors import FormlessError
from formless.methods.data import Batch


def launched_distributed() -> bool:
    """True inside a multi-process launch (``accelerate launch`` / ``torchrun`` set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


class Runner:
    """One process: every operation is the plain PyTorch one the loop has always used."""

    world: int = 1
    rank: int = 0
    accelerator: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, loaded_device: torch.device) -> torch.device:
        return loaded_device

    def prepare(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer):
        return model, optimizer

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def clip(self, model, params, max_norm: float) -> torch.Tensor:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)

    def shard(self, batch: Batch) -> tuple[Batch, float]:
        """This process's rows of a global batch and the factor its loss is multiplied by."""
        return batch, 1.0

    def mean(self, values: list[float]) -> list[float]:
        """The average over processes of per-process numbers (logged losses and metrics)."""
        return values

    def finish(self) -> None:
        return None


class AcceleratedRunner(Runner):
    """Several processes through an ``accelerate.Accelerator`` (created from the launcher's config)."""

    def __init__(self, accelerator=None):
        from accelerate import Accelerator

        # no GPU: CPU processes over gloo (accelerate would otherwise look for a GPU backend)
        self.accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
        self.world = self.accelerator.num_processes
        self.rank = self.accelerator.process_index

    def device(self, loaded_device: torch.device) -> torch.device:
        return self.accelerator.device

    def prepare(self, model, optimizer):
        """DDP or ZeRO-1/2 (every process keeps whole parameters, so the trained model every process
        ends with is the full one). FSDP and ZeRO-3 shard the parameters themselves: the merged
        model would have to be gathered from the shards, which is not written yet, so they are
        refused before any work rather than saving a model of empty shards."""
        from accelerate.utils import DistributedType

        kind = self.accelerator.distributed_type
        plugin = getattr(self.accelerator.state, "deepspeed_plugin", None)
        stage = getattr(plugin, "zero_stage", 0) if kind == DistributedType.DEEPSPEED else 0
        if kind == DistributedType.FSDP or stage == 3:
            raise FormlessError(
                f"{'FSDP' if stage != 3 else 'DeepSpeed ZeRO-3'} shards the parameters, and formless cannot "
                "gather a sharded trained model yet; use DDP or ZeRO-1/2 (LoRA keeps their memory small), "
                "or one process with --device-map auto for a model larger than one GPU"
            )
        return self.accelerator.prepare(model, optimizer)

    def backward(self, loss: torch.Tensor) -> None:
        self.accelerator.backward(loss)

    def clip(self, model, params, max_norm: float) -> torch.Tensor:
        # accelerate clips what the wrapper holds (FSDP shards, ZeRO partitions) and returns the
        # norm of the whole, already averaged gradient: the same number on every process
        norm = self.accelerator.clip_grad_norm_(model.parameters(), max_norm)
        return norm if norm is not None else torch.tensor(float("nan"))

    def shard(self, batch: Batch) -> tuple[Batch, float]:
        rows = batch.input_ids.shape[0]
        if rows < self.world:
            raise FormlessError(
                f"a batch of {rows} examples cannot be split over {self.world} processes; "
                f"raise --batch-size to at least {self.world} (it is the global batch)"
            )
        chunks = [torch.tensor_split(t, self.world) for t in (batch.input_ids, batch.attention_mask)]
        labels = torch.tensor_split(batch.labels, self.world)[self.rank]
        mine = Batch(chunks[0][self.rank], chunks[1][self.rank], labels, f"{batch.key}@{self.rank}")
        return mine, self.world * labels.shape[0] / rows

    def mean(self, values: list[float]) -> list[float]:
        local = torch.tensor(values, dtype=torch.float64, device=self.accelerator.device)
        return self.accelerator.reduce(local, "mean").tolist()

    def finish(self) -> None:
        self.accelerator.free_memory()


def process_state():
    """accelerate's per-process state (rank, barrier), set up the way :class:`AcceleratedRunner` sets it."""
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def make_runner(accelerator=None) -> Runner:
    """An accelerated runner when given an Accelerator or launched on several processes, else the
    plain single-process one (so a single process runs exactly the loop it always ran)."""
    if accelerator is not None or launched_distributed():
        return AcceleratedRunner(accelerator)
    return Runner()


class Policy:
    """The prepared model as the losses see it: calls go through the wrapper (DDP, FSDP and ZeRO
    synchronise gradients in their forward and backward hooks), every attribute (``config``,
    submodules, ``disable_adapter``) comes from the unwrapped model, which the wrappers hide."""

    def __init__(self, wrapped, inner):
        self._wrapped, self._inner = wrapped, inner

    def __call__(self, *args, **kwargs):
        return self._wrapped(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)
