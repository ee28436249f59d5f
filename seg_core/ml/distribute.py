"""Where a run trains: this machine's CPU, its GPUs, or several machines, through TensorFlow's tf.distribute.

Reading a --cluster, building TF_CONFIG and the batch rule need no TensorFlow (a page or the CLI checks them
quickly); choosing the devices and making the strategy import it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
from dataclasses import dataclass
from typing import Callable

from seg_core.errors import TrainingError
from seg_core.ml.precision import WORDS as PRECISION_WORDS, cpu_precision

# The coordination service (it runs in the chief) takes a worker that has not beaten for this long for dead and
# fails every worker's collectives, so a dead worker ends the run in bounded time instead of a hang.
HEARTBEAT_TIMEOUT_S = 30
# Every worker of a cluster must have started within this long of the chief; after that the chief gives up.
JOIN_TIMEOUT_S = 600
# Batch rule on one machine's GPUs: the run's batch per GPU is doubled while a batch's estimated training memory
# (models.train_bytes_per_image, at float32, so mixed precision leaves room to spare) stays within this share of
# the smallest GPU's memory, up to GPU_MAX_BATCH and no further than one batch per GPU covers the training images.
# The learning rate grows with the square root of the factor (the usual rule for Adam). A CPU run, and a cluster
# (whose workers must agree on the batch whatever their GPUs), keep the run's own batch.
GPU_MEMORY_SHARE = 0.5
GPU_MAX_BATCH = 64
_HOST = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)$")


@dataclass(frozen=True)
class Cluster:
    """The machines of a multi-worker run, in the same order on every one of them, and which one this is.
    Task 0 is the chief: it owns the run's record, metrics, checkpoints and previews."""

    workers: tuple[str, ...]
    task: int

    @property
    def chief(self) -> bool:
        return self.task == 0

    @property
    def spec(self) -> str:
        return ",".join(self.workers)

    def tf_config(self) -> dict:
        """TF_CONFIG as MultiWorkerMirroredStrategy reads it."""
        return {"cluster": {"worker": list(self.workers)}, "task": {"type": "worker", "index": self.task}}


def parse_cluster(text: str, task: int | None) -> Cluster:
    """`host1:port,host2:port` and this machine's place in it, or a sentence saying what is wrong."""
    workers = tuple(w.strip() for w in (text or "").split(",") if w.strip())
    if len(workers) < 2:
        raise TrainingError("--cluster needs at least two workers, as host:port separated by commas "
                            "(e.g. --cluster 10.0.0.1:2222,10.0.0.2:2222).")
    for w in workers:
        host, sep, port = w.rpartition(":")
        if not sep or not _HOST.match(host) or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise TrainingError(f"'{w}' in --cluster is not host:port (a host name or address, then a port "
                                "1-65535, e.g. 10.0.0.1:2222).")
    if len(set(workers)) != len(workers):
        raise TrainingError("--cluster names the same host:port twice; each worker needs its own.")
    if task is None:
        raise TrainingError("--cluster needs --task: 0 on the chief (the first in the list), 1, 2... on the others.")
    if not 0 <= task < len(workers):
        raise TrainingError(f"--task {task} is not in the cluster: it has {len(workers)} workers, so --task is "
                            f"0 to {len(workers) - 1} (0 is the chief, {workers[0]}).")
    return Cluster(workers, task)


@dataclass(frozen=True)
class Plan:
    """The devices this process trains on and how replicas share the work.

    Batch rule: a run's batch size is per replica (one GPU, or one CPU process); the global batch of a step is
    that times the replicas in sync (GPUs of this machine x workers). The learning rate is not scaled."""

    gpus: tuple[str, ...] = ()          # names of this machine's GPUs that train
    cluster: Cluster | None = None

    @property
    def local_replicas(self) -> int:
        return max(1, len(self.gpus))

    @property
    def replicas(self) -> int:
        return self.local_replicas * (len(self.cluster.workers) if self.cluster else 1)

    @property
    def distributed(self) -> bool:
        """Under a tf.distribute strategy; else the plain single-process step."""
        return self.cluster is not None or len(self.gpus) > 1

    @property
    def chief(self) -> bool:
        return self.cluster is None or self.cluster.chief

    def global_batch(self, per_replica: int) -> int:
        return per_replica * self.replicas

    def precision(self, asked: str) -> str:
        """"auto": mixed_float16 on a GPU (tensor cores; the model's output layer stays float32), on a CPU
        precision.cpu_precision (bfloat16 where the CPU has bf16 units, else float32)."""
        if asked != "auto":
            return asked
        return "mixed_float16" if self.gpus else cpu_precision()

    def xla(self, asked: bool) -> bool:
        # A step compiled by XLA cannot hold the collective all-reduce of a strategy (not on CPUs, untested on GPUs).
        return asked and not self.distributed

    def describe(self, gpu_batch: int | None = None, precision: str | None = None) -> str:
        """What the run's line shows, e.g. "CPU", "CPU, bfloat16" (the precision it computes in, when given),
        "2 GPUs (NVIDIA H100), batch 32 per GPU", "2 workers (a:2222,b:2222); chief: CPU"."""
        here = "CPU"
        if self.gpus:
            names = sorted(set(self.gpus))
            here = f"{len(self.gpus)} GPU{'s' if len(self.gpus) > 1 else ''} ({', '.join(names)})"
            if gpu_batch:
                here += f", batch {gpu_batch} per GPU"
        if self.cluster:
            here = f"{len(self.cluster.workers)} workers ({self.cluster.spec}); chief: {here}"
        return here + (f", {PRECISION_WORDS[precision]}" if precision else "")

    def scope(self, strategy):
        return strategy.scope() if strategy is not None else contextlib.nullcontext()

    def make_strategy(self):
        """None on one CPU or one GPU (TensorFlow's default: the exact single-process step); MirroredStrategy for
        several GPUs; MultiWorkerMirroredStrategy for a cluster. Made before any other TensorFlow work."""
        if self.cluster is None:
            if len(self.gpus) > 1:
                import tensorflow as tf
                return tf.distribute.MirroredStrategy()
            return None
        import tensorflow as tf
        from tensorflow.python.eager import context

        os.environ["TF_CONFIG"] = json.dumps(self.cluster.tf_config())
        # The strategy would configure the coordination service itself, without bounds: a worker that never
        # starts would keep the chief waiting forever, and one that died would be noticed late.
        context.context().configure_coordination_service(
            service_type="standalone", service_leader="/job:worker/replica:0/task:0",
            cluster_register_timeout_in_ms=JOIN_TIMEOUT_S * 1000,
            heartbeat_timeout_in_ms=HEARTBEAT_TIMEOUT_S * 1000, shutdown_barrier_timeout_in_ms=HEARTBEAT_TIMEOUT_S * 1000,
            coordinated_jobs=[_coordinated_job(len(self.cluster.workers))])
        kind = (tf.distribute.experimental.CommunicationImplementation.NCCL if self.gpus
                else tf.distribute.experimental.CommunicationImplementation.RING)
        return tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(implementation=kind))


def memory_batch(batch: int, bytes_per_image: int, memory_bytes: int, train_images: int, replicas: int = 1) -> int:
    """The batch per GPU by the batch rule above: `batch` doubled while it fits."""
    grown = batch
    while (grown * 2 <= GPU_MAX_BATCH and grown * 2 * bytes_per_image <= GPU_MEMORY_SHARE * memory_bytes
           and grown * 2 * replicas <= max(train_images, batch * replicas)):
        grown *= 2
    return grown


def gpu_memory_bytes() -> int:
    """The memory TensorFlow may use on the smallest of this machine's GPUs (0 without one). Reads the
    initialised runtime, so call it after the strategy was made."""
    from tensorflow.python.client import device_lib

    limits = [d.memory_limit for d in device_lib.list_local_devices() if d.device_type == "GPU"]
    return int(min(limits)) if limits else 0


def _coordinated_job(tasks: int):
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2

    return coordination_config_pb2.CoordinatedJob(name="worker", num_tasks=tasks)


def choose(cluster: Cluster | None = None, gpus: list | None = None) -> Plan:
    """The plan for this process: every GPU TensorFlow sees (`gpus`: its list_physical_devices("GPU"), given by
    tests), else the CPU."""
    if gpus is None:
        import tensorflow as tf
        gpus = tf.config.list_physical_devices("GPU")
    return Plan(tuple(_gpu_name(g) for g in gpus), cluster)


def _gpu_name(device) -> str:
    try:
        import tensorflow as tf
        details = tf.config.experimental.get_device_details(device)
    except Exception:   # a device without details (or a test's stand-in)
        details = {}
    return str(details.get("device_name") or getattr(device, "name", device))


def any_worker(strategy) -> Callable[[bool], bool]:
    """A function that is True on every worker when any of them passes True: one all-reduce, so all leave training
    at the same epoch boundary (a worker that left alone would leave the others waiting in their next collective)."""
    import tensorflow as tf

    def agree(flag: bool) -> bool:
        # With several workers, a tensor that is not per-replica is summed across them by a collective.
        total = strategy.reduce(tf.distribute.ReduceOp.SUM, tf.constant(1.0 if flag else 0.0), axis=None)
        return float(total) > 0

    return agree


def build_before_fit(model, strategy, dataset) -> None:
    """Build the model, its metrics and optimizer from the dataset's shapes under the strategy, and keep fit from
    doing it: Keras 3.15's fit builds a model under MultiWorkerMirroredStrategy by averaging a distributed
    (images, masks) batch with strategy.reduce, which that strategy refuses for a pair of tensors."""
    with strategy.scope():
        model._symbolic_build(data_batch=dataset.element_spec)
    model._maybe_symbolic_build = lambda *args, **kwargs: None
    _mean_scalars_across_workers()


def _mean_scalars_across_workers() -> None:
    """Keras 3.15 averages each step's logs over a MultiWorkerMirroredStrategy with strategy.reduce(MEAN, axis=0),
    which fails for a scalar (every loss and metric): average scalars across the workers (axis None) instead."""
    from keras.src.backend.tensorflow import trainer

    original = trainer.reduce_per_replica
    if getattr(original, "scalars_averaged", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not trainer._collective_all_reduce_multi_worker(strategy):
            return original(values, strategy, reduction)

        def mean(v):
            rank = getattr(v, "values", (v,))[0].shape.rank
            return strategy.reduce("MEAN", v, axis=0 if rank else None)

        return trainer.tree.map_structure(mean, values)

    reduce_per_replica.scalars_averaged = True
    trainer.reduce_per_replica = reduce_per_replica


def lost_peer_text(cluster: Cluster, exc: BaseException) -> str:
    """The run's error when a collective failed: a worker died, was stopped or could not be reached."""
    return (f"A training worker of the cluster {cluster.spec} stopped or could not be reached, so the run stopped "
            f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else 'no detail'}). "
            "The last finished epoch is kept: start every worker again (--task 1, 2... on the others) and resume.")


def is_collective_failure(exc: BaseException) -> bool:
    import tensorflow as tf

    return isinstance(exc, (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
                            tf.errors.AbortedError, tf.errors.InternalError, tf.errors.FailedPreconditionError))


def local_cluster(workers: int) -> str:
    """A --cluster value for `workers` processes on this machine, on ports free right now (tests, bench/scale.py)."""
    socks = [socket.socket() for _ in range(workers)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ",".join(f"127.0.0.1:{p}" for p in ports)
