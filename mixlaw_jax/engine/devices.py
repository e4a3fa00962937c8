"""Where the engine runs: the chosen devices, a 1-D mesh over them, and the memory budget per device.

With one device the engine runs its jitted programs there unchanged. With several (local, or spanning every
process after ``jax.distributed.initialize``) the batch axis of each heavy call — the screened starts, the
flattened (problem, start) pairs of the solver — is split over a 1-D ``Mesh`` with ``NamedSharding``; every
other input is replicated. The outputs, split the same way, are gathered to the host once computed, so each
process holds the whole result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ..errors import MixlawError

#: Name of the mesh axis the batch is split over.
AXIS = "batch"
#: Budget (bytes per device) for one batched call where the device does not report its memory (CPU).
DEFAULT_MEMORY = 2e9
#: Share of a device's free memory the engine budgets for one batched call where the device reports it.
MEMORY_FRACTION = 0.5


def resolve(devices: int | Sequence[jax.Device] | None) -> tuple[jax.Device, ...]:
    """The devices to run on: ``None`` -> every device of every process (``jax.devices()``), an int n -> the
    first n of them, or the given devices (all of one platform)."""
    available = jax.devices()
    if devices is None:
        chosen = tuple(available)
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        if not 1 <= devices <= len(available):
            raise MixlawError(f"devices={devices}: between 1 and the {len(available)} available devices")
        chosen = tuple(available[:devices])
    else:
        chosen = tuple(devices)
        if not chosen or not all(isinstance(d, jax.Device) for d in chosen):
            raise MixlawError(f"devices must be None, a count or a non-empty list of jax devices, not {devices!r}")
    if len({d.platform for d in chosen}) > 1:
        raise MixlawError(f"devices of one platform only, not {sorted({d.platform for d in chosen})}")
    if len(set(chosen)) != len(chosen):
        raise MixlawError("devices: each device at most once")
    if len(chosen) == 1 and chosen[0].process_index != jax.process_index():
        raise MixlawError(f"devices: the single device {chosen[0]} belongs to another process")
    return chosen


def memory_budget(devices: Sequence[jax.Device], memory_bytes: float | None = None) -> float:
    """Bytes per device for the temporaries of one batched call: ``memory_bytes`` when given, else
    ``MEMORY_FRACTION`` of the free memory of the tightest local device that reports it (GPU, TPU), else
    ``DEFAULT_MEMORY``."""
    if memory_bytes is not None:
        if not memory_bytes > 0:
            raise MixlawError(f"memory_bytes must be > 0, not {memory_bytes!r}")
        return float(memory_bytes)
    free = []
    for device in devices:
        stats = device.memory_stats() if device.process_index == jax.process_index() else None
        if stats and "bytes_limit" in stats:
            free.append(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    return MEMORY_FRACTION * min(free) if free else DEFAULT_MEMORY


@dataclasses.dataclass(frozen=True)
class Placement:
    """The devices of one engine call and their memory budget; ``mesh`` is None on a single device."""

    devices: tuple[jax.Device, ...]
    memory_bytes: float
    mesh: Mesh | None

    @classmethod
    def create(cls, devices=None, memory_bytes: float | None = None) -> Placement:
        chosen = resolve(devices)
        mesh = Mesh(np.asarray(chosen), (AXIS,)) if len(chosen) > 1 else None
        return cls(chosen, memory_budget(chosen, memory_bytes), mesh)

    @property
    def n_devices(self) -> int:
        return len(self.devices)

    @property
    def platform(self) -> str:
        """``"cpu"``, ``"gpu"`` or ``"tpu"`` (every device of a placement has the same)."""
        return self.devices[0].platform

    def padded(self, n: int) -> int:
        """n rounded up to a multiple of the device count."""
        return -(-n // self.n_devices) * self.n_devices

    def put(self, tree, spec: PartitionSpec):
        """Host values (the same in every process) as global arrays laid out by ``spec`` on the mesh."""
        sharding = NamedSharding(self.mesh, spec)

        def one(a):
            a = np.asarray(a)
            return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])

        return jax.tree.map(one, tree)


def pad_leading(tree, n: int):
    """Each array's leading axis padded to n by repeating its last entry (padding results are dropped)."""

    def one(a):
        a = np.asarray(a)
        extra = n - a.shape[0]
        return a if extra == 0 else np.concatenate([a, np.repeat(a[-1:], extra, axis=0)])

    return jax.tree.map(one, tree)


def fetch(tree):
    """Global arrays as whole host arrays in every process, once computed (no device holds a replicated copy;
    across processes the shards are exchanged by ``process_allgather``)."""
    return multihost_utils.process_allgather(jax.block_until_ready(tree), tiled=True)
