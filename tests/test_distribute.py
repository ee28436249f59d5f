"""Devices and workers (ml/distribute.py): the device and strategy choice, TF_CONFIG, the batch rule, --cluster
checks, the GPU settings trained for real on this CPU, and two real worker processes on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import keras
import pytest

from helpers import ROOT
from seg_core.cli import main
from seg_core.errors import TrainingError
from seg_core.ml import distribute, training
from seg_core.ml.config import TrainConfig
from seg_core.ml.distribute import Cluster, Plan, choose, parse_cluster
from seg_core.ml.inference import Predictor
from seg_core.ml.precision import cpu_precision
from seg_core.ml.training import train
from seg_core.services import demo, jobs
from seg_core.store.project import Project

GPU0, GPU1 = (SimpleNamespace(name=f"/physical_device:GPU:{i}", device_type="GPU") for i in (0, 1))


def tiny(epochs: int) -> list[str]:
    return ["--epochs", str(epochs), "--size", "32", "--filters", "4", "--depth", "2", "--batch", "4", "--steps", "3",
            "--no-xla", "--no-augment"]


GUARD_S = 300   # liveness guard of each worker process: a hang fails the test instead of CI


def test_a_cluster_is_read_from_host_port_pairs():
    c = parse_cluster("10.0.0.1:2222, node-b.lan:2223", 1)
    assert c.workers == ("10.0.0.1:2222", "node-b.lan:2223") and c.task == 1 and not c.chief
    assert c.spec == "10.0.0.1:2222,node-b.lan:2223"
    assert c.tf_config() == {"cluster": {"worker": ["10.0.0.1:2222", "node-b.lan:2223"]},
                             "task": {"type": "worker", "index": 1}}
    assert json.loads(json.dumps(parse_cluster("[::1]:5000,[::1]:5001", 0).tf_config()))["task"]["index"] == 0


@pytest.mark.parametrize("text, task, words", [
    ("10.0.0.1:2222", 0, "at least two workers"),
    ("10.0.0.1,10.0.0.2:2222", 0, "'10.0.0.1' in --cluster is not host:port"),
    ("a:2222,b:99999", 0, "'b:99999' in --cluster is not host:port"),
    ("a:2222,-b:1", 0, "'-b:1' in --cluster is not host:port"),
    ("a:2222,a:2222", 0, "the same host:port twice"),
    ("a:2222,b:2222", 2, "--task 2 is not in the cluster: it has 2 workers, so --task is 0 to 1"),
    ("a:2222,b:2222", -1, "--task -1 is not in the cluster"),
    ("a:2222,b:2222", None, "--cluster needs --task"),
])
def test_a_bad_cluster_is_a_sentence(text, task, words):
    with pytest.raises(TrainingError, match=words.replace("(", r"\(")):
        parse_cluster(text, task)


def test_the_cli_checks_cluster_and_task_first(capsys, workspace):
    assert main(["train", "--project", "nowhere", "--cluster", "a:1,b:notaport", "--task", "0"]) == 2
    assert "'b:notaport' in --cluster is not host:port" in capsys.readouterr().err
    assert main(["train", "--project", "nowhere", "--cluster", "a:1,b:2", "--task", "5"]) == 2
    assert "--task 5 is not in the cluster" in capsys.readouterr().err
    assert main(["train", "--project", "nowhere", "--task", "1"]) == 2
    assert "give --cluster too" in capsys.readouterr().err
    with pytest.raises(TrainingError, match="settings are not valid: 'x' in --cluster"):
        TrainConfig(cluster="x,y:1").validate()


def test_devices_choose_the_strategy_precision_batch_and_xla(monkeypatch):
    cpu = choose(gpus=[])
    assert cpu == Plan() and cpu.describe() == "CPU" and cpu.chief
    assert (cpu.replicas, cpu.distributed, cpu.global_batch(8), cpu.precision("auto"), cpu.xla(True)) == \
        (1, False, 8, cpu_precision(), True)   # bfloat16 where the CPU has bf16 units (tests/test_precision.py)
    assert cpu.make_strategy() is None   # one CPU process: TensorFlow's default strategy, the step as it always was

    one = choose(gpus=[GPU0])
    assert (one.replicas, one.distributed, one.global_batch(8), one.precision("auto"), one.xla(True)) == \
        (1, False, 8, "mixed_float16", True)
    assert one.precision("float32") == "float32" and one.make_strategy() is None
    assert one.describe() == "1 GPU (/physical_device:GPU:0)"

    made = []
    monkeypatch.setattr("tensorflow.distribute.MirroredStrategy", lambda: made.append("mirrored") or "mirrored")
    two = choose(gpus=[GPU0, GPU1])
    assert (two.replicas, two.distributed, two.global_batch(8), two.precision("auto"), two.xla(True)) == \
        (2, True, 16, "mixed_float16", False)
    assert two.make_strategy() == "mirrored" and made == ["mirrored"]
    assert two.describe().startswith("2 GPUs (")

    cluster = Cluster(("a:1", "b:2", "c:3"), 2)
    assert choose(cluster, gpus=[]).replicas == 3 and not choose(cluster, gpus=[]).chief
    big = choose(Cluster(("a:1", "b:2"), 0), gpus=[GPU0, GPU1])
    assert big.replicas == 4 and big.global_batch(8) == 32 and big.xla(True) is False
    assert big.describe() == "2 workers (a:1,b:2); chief: 2 GPUs (/physical_device:GPU:0, /physical_device:GPU:1)"


def test_an_epoch_counts_global_batches():
    config = TrainConfig(batch_size=8)
    assert config.steps_for(400) == 50 and config.steps_for(400, batch=16) == 25 and config.steps_for(40, 16) == 20


def test_the_gpu_batch_rule_doubles_the_batch_while_it_fits():
    mib, gib = 1024 ** 2, 1024 ** 3
    grow = distribute.memory_batch
    assert grow(8, 100 * mib, 16 * gib, 10_000) == distribute.GPU_MAX_BATCH == 64   # capped
    assert grow(8, 100 * mib, 4 * gib, 10_000) == 16            # 32 x 100 MiB is past half of 4 GiB
    assert grow(8, 300 * mib, 4 * gib, 10_000) == 8             # never shrunk: the run's own batch is the floor
    assert grow(8, 1 * mib, 16 * gib, 20) == 16                 # one batch covers the training images
    assert grow(8, 1 * mib, 16 * gib, 40, replicas=2) == 16     # ... across both GPUs' batches
    assert grow(8, 1 * mib, 16 * gib, 5) == 8
    assert grow(8, 1 * mib, 0, 10_000) == 8                     # no memory figure: the run's batch


def test_a_networks_training_memory_follows_its_feature_maps():
    from seg_core.ml import models

    small, large = (models.train_bytes_per_image(TrainConfig(base_filters=8, depth=3), s, 3, 2) for s in (64, 128))
    assert large == pytest.approx(4 * small, rel=0.01)   # feature maps grow with the pixels
    wider = models.train_bytes_per_image(TrainConfig(base_filters=16, depth=3), 64, 3, 2)
    assert 1.8 * small < wider < 2.2 * small


def test_the_gpu_settings_train_with_float32_outputs_and_a_grown_batch(workspace, monkeypatch):
    """What a GPU run gets (mixed_float16, the plain step, the batch grown to memory), trained for real on this CPU:
    no GPU here, so the device's memory is stood in."""
    monkeypatch.setattr(distribute, "gpu_memory_bytes", lambda: 8 * 1024 ** 3)
    project = demo.create_demo_project(workspace / "mixed", count=6, unlabeled=0)
    config = TrainConfig(image_size=32, base_filters=4, depth=2, epochs=1, batch_size=2, steps_per_epoch=2,
                         early_stopping_patience=0, xla=False, learning_rate=1e-3)
    run = project.runs.create(config.to_dict())
    assert train(project, run.id, config, plan=Plan(gpus=("stand-in GPU",))) == "completed"
    assert keras.mixed_precision.global_policy().name == "float32"   # the run's policy stayed within the run
    saved = json.loads(project.layout.run(run.id).config.read_text())
    # Five training images: the batch of 2 grows to 4, not 8; the learning rate by the square root of 2.
    assert saved["global_batch"] == saved["batch_size"] == 4 and saved["learning_rate"] == pytest.approx(2 ** .5 * 1e-3)
    assert saved["devices"] == project.runs.get(run.id).devices == "1 GPU (stand-in GPU), batch 4 per GPU, float16"
    assert project.runs.get(run.id).config["batch_size"] == 2   # the run's own settings stay as the person set them
    fixed = dataclasses.replace(config, batch_to_memory=False)
    assert training.for_devices(fixed, Plan(gpus=("g",)), 3, 2, 100) is fixed
    assert training.for_devices(config, Plan(), 3, 2, 100) is config
    assert training.for_devices(config, Plan(("g",), Cluster(("a:1", "b:2"), 0)), 3, 2, 100) is config
    model = Predictor.from_run(project, run.id).model
    assert model.layers[-1].dtype_policy.name == "float32" and model.layers[1].dtype_policy.name == "mixed_float16"


# ----- two real worker processes on this machine ---------------------------------------------------------------------
def _start(workspace: Path, project: Project, cluster: str, task: int, log: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "MASKLOOP_WORKSPACE": str(workspace), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "seg_core.cli", "train", "--project", str(project.path),
                                 "--cluster", cluster, "--task", str(task), *extra], stdout=out,
                                stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True)


def _finish(proc: subprocess.Popen) -> int:
    try:
        return proc.wait(timeout=GUARD_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail("a training worker did not end within its liveness guard")


def _pair(workspace, project, tmp_path, *extra, tag="run"):
    cluster = distribute.local_cluster(2)
    logs = tmp_path / f"{tag}-chief.log", tmp_path / f"{tag}-worker.log"
    chief = _start(workspace, project, cluster, 0, logs[0], *extra)
    peer = _start(workspace, project, cluster, 1, logs[1], *extra)
    return chief, peer, logs


def _wait(predicate, what, procs):
    import time

    end = time.monotonic() + GUARD_S
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        if any(p.poll() is not None for p in procs):
            value = predicate()
            if value:
                return value
            pytest.fail(f"a worker ended before {what}")
        time.sleep(0.5)
    for p in procs:
        os.killpg(p.pid, signal.SIGKILL)
    pytest.fail(f"gave up waiting for {what}")


@pytest.fixture
def shared(workspace):
    """A project in a folder both workers read (here: the same machine)."""
    return demo.create_demo_project(workspace / "shared", count=8, unlabeled=1)


def test_two_workers_train_one_run(shared, workspace, tmp_path):
    # The tiny U-Net: two processes tracing the photo preset's Lite0 on two cores took most of this test's time,
    # and the network is not what it is about (every network builds and trains inside the same strategy scope).
    chief, peer, logs = _pair(workspace, shared, tmp_path, *tiny(2), "--scratch")
    assert _finish(peer) == 0, logs[1].read_text()
    assert _finish(chief) == 0, logs[0].read_text()
    run = shared.runs.list()[0]
    assert run.status == "completed" and run.devices.startswith("2 workers (127.0.0.1:")
    assert run.config["model"] == "unet"
    assert [m["epoch"] for m in shared.runs.epoch_metrics(run.id)] == [0, 1]
    # Both did the steps of both epochs: the chief's worker log and the other worker's own.
    chief_log = jobs.worker_log(shared, run.id, 100_000)
    for task, text in ((0, chief_log), (1, logs[1].read_text())):
        assert f"task {task}: epoch 1 done, 3 steps" in text and f"task {task}: epoch 2 done, 3 steps" in text, text
    assert "devices" not in {k for m in shared.runs.epoch_metrics(run.id) for k in m}
    assert json.loads(shared.layout.run(run.id).config.read_text())["global_batch"] == 8   # 4 a worker x 2
    pred = Predictor.from_run(shared, run.id).predict_one(shared.load_image(1))
    assert pred.ids.shape == (240, 320)
    assert main(["runs", "--project", str(shared.path)]) == 0


def test_a_killed_worker_fails_the_run_and_the_run_resumes(shared, workspace, tmp_path, capsys):
    # The kill comes long before the end. A worker's failure and the resume do not depend on the network (Lite0's
    # resume past its frozen epochs is tested in test_lite0_start.py); the scratch U-Net traces much faster.
    chief, peer, logs = _pair(workspace, shared, tmp_path, *tiny(60), "--scratch")
    run_id = _wait(lambda: (runs := shared.runs.list()) and shared.runs.epoch_metrics(runs[0].id) and runs[0].id,
                   "the first epoch", [chief, peer])
    os.killpg(peer.pid, signal.SIGKILL)
    peer.wait(timeout=GUARD_S)
    assert _finish(chief) == 1, logs[0].read_text()
    run = jobs.refresh_run(shared, run_id)
    assert run.status == "failed" and "stopped or could not be reached" in run.error, run.error
    assert "error: run" in logs[0].read_text()
    done = len(shared.runs.epoch_metrics(run_id))

    # Resume from the chief's last.keras, on new ports: both workers go on from the last finished epoch (one more).
    shared.runs.update(run_id, config={**run.config, "epochs": done + 1})
    chief, peer, logs = _pair(workspace, shared, tmp_path, "--resume", run_id, tag="resume")
    assert _finish(peer) == 0, logs[1].read_text()
    assert _finish(chief) == 0, logs[0].read_text()
    assert "resumed" in logs[1].read_text()
    run = shared.runs.get(run_id)
    assert run.status == "completed", run.error
    assert [m["epoch"] for m in shared.runs.epoch_metrics(run_id)] == list(range(run.config["epochs"]))


def test_stop_from_the_page_stops_every_worker(shared, workspace, tmp_path):
    # The stop flag does not depend on the network: the scratch U-Net traces in a fraction of Lite0's time.
    chief, peer, logs = _pair(workspace, shared, tmp_path, *tiny(200), "--scratch")
    run_id = _wait(lambda: (runs := shared.runs.list()) and shared.runs.epoch_metrics(runs[0].id) and runs[0].id,
                   "the first epoch", [chief, peer])
    jobs.stop(shared, run_id)   # what the page's Stop does: the stop flag in the project database
    assert _finish(peer) == 0, logs[1].read_text()
    assert _finish(chief) == 0, logs[0].read_text()
    run = shared.runs.get(run_id)
    assert run.status == "stopped" and len(shared.runs.epoch_metrics(run_id)) < 200
    assert f"task 1: run {run_id} stopped" in logs[1].read_text()
