"""The plan's order, model reuse, memory-aware parallelism and out-of-memory tasks
(harness/scheduling.py, harness/runner.py)."""

from __future__ import annotations

import re
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass

import pytest

from harness import scheduling
from harness.runner import _next_task, _Worker, worker_devices
from tests.conftest import run_cli
from tests.test_registry import _with_plugin, installed_plugin  # noqa: F401 (fixture)


@dataclass(frozen=True)
class _Task:
    codec: str
    quality: float
    seconds: float
    memory: int = 0
    holds_model: bool = False
    device: str = "cpu"

    @property
    def spec(self):
        return self.codec


def test_longest_tasks_first_and_one_models_tasks_together():
    tasks = [_Task("jpeg", 50, 0.01), _Task("vtm", 32, 20.0), _Task("stf", 1, 3.0),
             _Task("jpeg", 50, 0.02), _Task("vtm", 32, 60.0), _Task("stf", 1, 2.0),
             _Task("stf", 2, 3.5)]
    ordered = scheduling.longest_first(tasks)
    assert [(t.codec, t.quality, t.seconds) for t in ordered] == [
        ("vtm", 32, 60.0), ("vtm", 32, 20.0), ("stf", 2, 3.5), ("stf", 1, 3.0),
        ("stf", 1, 2.0), ("jpeg", 50, 0.02), ("jpeg", 50, 0.01)]


def test_estimates_come_from_the_store_before_the_declared_cost():
    speeds = {("vtm", 32.0): 100.0, ("vtm", None): 80.0}
    pixels = 768 * 512
    per_mp = scheduling.METRICS_SECONDS_PER_MEGAPIXEL
    assert scheduling.estimate_seconds("vtm", 5.0, 32, pixels, speeds) == pytest.approx(
        (100.0 + per_mp) * pixels / 1e6)
    assert scheduling.estimate_seconds("vtm", 5.0, 37, pixels, speeds) == pytest.approx(
        (80.0 + per_mp) * pixels / 1e6)  # another quality of the same codec
    assert scheduling.estimate_seconds("bpg", 5.0, 37, pixels, speeds) == pytest.approx(
        5.0 * pixels / 1e6)  # nothing stored: the declared cost


def test_memory_sizes_and_what_may_run_beside_what():
    assert scheduling.parse_memory("16G") == 16 * 2**30
    assert scheduling.parse_memory("512MiB") == 512 * 2**20
    assert scheduling.parse_memory("1000") == 1000
    for bad in ("", "G", "-1G", "lots", "nanG", "infG"):
        with pytest.raises(ValueError):
            scheduling.parse_memory(bad)
    pending = {"big1": _Task("shen", 1, 9, 7 * 2**30), "big2": _Task("shen", 1, 9, 7 * 2**30),
               "small": _Task("jpeg", 50, 0.1, 2**27)}
    queue = ["big2", "small"]
    budget = 10 * 2**30
    worker = _Worker(None)

    def next_task(queue, in_flight, budget):
        return _next_task(queue, pending, worker, [worker], in_flight, budget)

    assert next_task(queue, [], budget) == "big2"
    assert next_task(queue, ["big1"], budget) == "small"  # big2 waits
    assert next_task(["big2"], ["big1"], budget) is None
    assert next_task(["big2"], [], 2**30) == "big2"  # alone: runs however large


def test_a_worker_keeps_to_its_model_and_leaves_others_theirs():
    pending = {f"{codec}{quality}-{image}": _Task(codec, quality, 3.0, 0, codec == "stf")
               for codec, quality in (("stf", 1), ("stf", 2), ("jpeg", 50)) for image in (1, 2)}
    queue = list(pending)  # stf1-1 stf1-2 stf2-1 stf2-2 jpeg50-1 jpeg50-2
    first, second = _Worker(None, model=("stf", 1.0)), _Worker(None, model=("stf", 2.0))
    workers = [first, second]

    def next_task(worker, queue):
        return _next_task(queue, pending, worker, workers, [], 2**40)

    assert next_task(first, ["stf2-1", "stf1-2"]) == "stf1-2"  # its own, not the plan's first
    assert next_task(second, queue) == "stf2-1"
    assert next_task(first, ["stf2-2", "jpeg50-1"]) == "jpeg50-1"  # not the other's model
    assert next_task(first, ["stf2-2"]) == "stf2-2"  # the tail: rather than idle
    first.futures["running"] = "stf1-1"
    assert next_task(first, ["stf2-2"]) is None  # but not while it has work
    assert next_task(_Worker(None), ["stf1-1", "jpeg50-1"]) == "jpeg50-1"  # a new worker


def _run(codec, folder, tmp_path, plugin, *extra, env=None):
    tmp_path.mkdir(exist_ok=True)
    store = tmp_path / f"{codec}.sqlite"
    done = run_cli("run", "--datasets", str(folder), "--codecs", codec, "--qualities", "2", "4",
                   "6", "--jobs", "2", "--store", str(store), "--no-progress", "--no-report",
                   *extra, env=_with_plugin(plugin) | (env or {}), cwd=tmp_path)
    return done, store


def _log(path):
    """pid -> [(event, quality, time)]"""
    events = defaultdict(list)
    for line in path.read_text().splitlines():
        pid, event, quality, when = line.split()
        events[int(pid)].append((event, float(quality), float(when)))
    return events


def test_each_worker_loads_a_model_once_and_holds_one(installed_plugin, photo_folder,  # noqa: F811
                                                      tmp_path):
    log = tmp_path / "toy.log"
    done, store = _run("toy-model", photo_folder, tmp_path, installed_plugin,
                       env={"TOY_LOG": str(log), "TOY_TASK_S": "0.2"})
    assert done.returncode == 0, done.stderr
    events = _log(log)
    loads = {pid: Counter(q for event, q, _ in items if event == "load")
             for pid, items in events.items()}
    ran = {pid: {q for event, q, _ in items if event == "start"} for pid, items in events.items()}
    # each worker loaded each (codec, quality) it ran exactly once
    assert all(set(loads[pid]) == ran[pid] and set(loads[pid].values()) == {1} for pid in loads)
    total = sum(sum(per_worker.values()) for per_worker in loads.values())
    # 3 models: at most one taken over at the tail by a worker that would idle
    assert total <= 4
    reported = re.search(r"model loads: (\d+) in (\d+) worker", done.stdout)
    assert reported and int(reported.group(1)) == total, done.stdout
    assert int(reported.group(2)) == len(loads)
    with sqlite3.connect(store) as db:  # none held two models (that is an error row)
        assert db.execute("SELECT count(*) FROM results WHERE error IS NULL").fetchone() == (6,)

    log.unlink()  # one worker: 3 models for 6 tasks, each loaded once
    done, _ = _run("toy-model", photo_folder, tmp_path / "one", installed_plugin, "--jobs", "1",
                   env={"TOY_LOG": str(log)})
    assert done.returncode == 0, done.stderr
    assert "model loads: 3 in 1 worker" in done.stdout
    assert sum(event == "load" for items in _log(log).values() for event, _, _ in items) == 3


def _overlaps(events) -> int:
    """How many pairs of tasks ran at the same time."""
    spans = []
    for items in events.values():
        starts = [when for event, _, when in items if event == "start"]
        ends = [when for event, _, when in items if event == "end"]
        spans += list(zip(starts, ends))
    return sum(1 for i, (s1, e1) in enumerate(spans) for s2, e2 in spans[i + 1:]
               if s1 < e2 and s2 < e1)


def test_tasks_run_side_by_side_only_while_their_memory_fits(installed_plugin,  # noqa: F811
                                                            photo_folder, tmp_path):
    for limit, side_by_side in (("1G", False), ("4G", True)):
        log = tmp_path / f"toy-{limit}.log"
        done, _ = _run("toy-model", photo_folder, tmp_path / limit, installed_plugin,
                       "--max-memory", limit,
                       env={"TOY_LOG": str(log), "TOY_TASK_S": "0.4",
                            "TOY_MODEL_BYTES": str(700 * 2**20)})
        assert done.returncode == 0, done.stderr
        assert (_overlaps(_log(log)) > 0) == side_by_side, limit
    refused = run_cli("run", "--max-memory", "lots", "--no-report")
    assert refused.returncode == 2 and "--max-memory" in refused.stderr


@pytest.mark.parametrize(("codec", "says"), [
    ("toy-oom", "MemoryError"),
    ("toy-oom-killed", "out of memory, most likely"),
])
def test_a_task_out_of_memory_is_an_error_row_not_a_dead_run(codec, says, installed_plugin,  # noqa: F811
                                                             photo_folder, tmp_path):
    done, store = _run(codec, photo_folder, tmp_path, installed_plugin)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT quality, error FROM results ORDER BY quality").fetchall()
    assert len(rows) == 6
    assert all((says in (error or "")) == (quality == 2) for quality, error in rows), rows


def test_tasks_on_a_gpu_have_a_worker_of_their_own():
    pending = {"stf": _Task("stf", 1, 9.0, 0, True, "cuda"),
               "jpeg": _Task("jpeg", 50, 0.1), "webp": _Task("webp", 50, 0.1)}
    assert worker_devices(list(pending.values()), 4) == ["cpu", "cpu", "cuda"]
    assert worker_devices(list(pending.values()), 1) == ["cpu", "cuda"]
    assert worker_devices([pending["stf"]], 4) == ["cuda"]  # no CPU worker idles
    assert worker_devices([_Task("a", 1, 1, 0, True, "cuda:1"),
                           _Task("b", 1, 1, 0, True, "cuda:0")], 2) == ["cuda:0", "cuda:1"]
    cpu, gpu = _Worker(None), _Worker(None, device="cuda")
    workers = [cpu, gpu]

    def next_task(worker, queue):
        return _next_task(queue, pending, worker, workers, [], 2**40)

    assert next_task(cpu, ["stf", "jpeg"]) == "jpeg"  # the GPU's task is not the CPU's
    assert next_task(cpu, ["stf"]) is None  # not even when the CPU's worker idles
    assert next_task(gpu, ["jpeg", "stf"]) == "stf"
    assert next_task(gpu, ["jpeg", "webp"]) is None


def test_gpu_tasks_run_beside_the_cpus_and_fall_back_to_it_out_of_memory(
        installed_plugin, photo_folder, tmp_path):  # noqa: F811
    """--device cuda on a mixed plan (toy-device-model takes the option, toy-model does
    not): the GPU's tasks run in one worker of their own while the CPU's workers measure
    the others; a task that runs out of GPU memory is measured on the CPU, its row says
    so. The toy computes on the CPU whatever its device: this is the runner's part (on a
    machine with a GPU, its out-of-memory error is PyTorch's own)."""
    log, store = tmp_path / "toy.log", tmp_path / "mixed.sqlite"
    done = run_cli("run", "--datasets", str(photo_folder), "--codecs", "toy-model",
                   "toy-device-model", "--qualities", "2", "4", "6", "--device", "cuda",
                   "--jobs", "2", "--store", str(store), "--no-progress", "--no-report",
                   env=_with_plugin(installed_plugin) | {"TOY_LOG": str(log),
                                                        "TOY_TASK_S": "0.5"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    runs = []  # {key: (pid, quality, device), start, end}, in order of start
    for line in log.read_text().splitlines():
        pid, event, quality, when, *device = line.split()
        key = (int(pid), float(quality), device[0] if device else "toy-model")
        if event == "start":
            runs.append(dict(key=key, start=float(when)))
        elif event == "end":
            next(r for r in reversed(runs) if r["key"] == key)["end"] = float(when)
    on_gpu = {r["key"][0] for r in runs if r["key"][2] == "cuda"}
    on_cpu = {r["key"][0] for r in runs if r["key"][2] == "toy-model"}
    assert len(on_gpu) == 1 and not on_gpu & on_cpu, runs
    assert len([r for r in runs if r["key"][2] == "cuda"]) == 4  # qualities 4 and 6
    # the quality-2 tasks: out of GPU memory, measured on the CPU by the GPU's worker
    assert sorted(r["key"] for r in runs if r["key"][2] == "cpu") == [(*on_gpu, 2.0, "cpu")] * 2
    # the lanes, first start to last end: the GPU's (6 x 0.5 s) overlaps the CPU's (the
    # lanes, not single tasks: workers that start seconds apart still overlap)
    gpu = [r for r in runs if r["key"][0] in on_gpu]
    cpu = [r for r in runs if r["key"][2] == "toy-model"]
    assert (min(r["start"] for r in gpu) < max(r["end"] for r in cpu)
            and min(r["start"] for r in cpu) < max(r["end"] for r in gpu)), runs
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT codec, quality, error, note, bpp FROM results").fetchall()
    assert len(rows) == 12 and all(error is None and bpp for _, _, error, _, bpp in rows)
    for codec, quality, _, note, _ in rows:
        if codec == "toy-device-model" and quality == 2:
            assert note.startswith("device_fallback: out of memory on cuda (CUDA out of"
                                   " memory. Tried to allocate "), note
        else:
            assert note is None, (codec, quality, note)
    assert "2 measurement(s) ran out of GPU memory" in done.stdout, done.stdout


def test_a_fallback_that_fails_on_the_cpu_too_is_an_error_row_that_says_both(
        installed_plugin, photo_folder, tmp_path):  # noqa: F811
    """Out of GPU memory, then an error on the CPU: the row has the CPU's error and the
    note of the fallback; the other rows are measured and the run resumes nothing."""
    store = tmp_path / "fails.sqlite"
    args = ("run", "--datasets", str(photo_folder), "--codecs", "toy-device-model",
            "--qualities", "2", "4", "--device", "cuda", "--jobs", "1", "--store",
            str(store), "--no-progress", "--no-report")
    env = _with_plugin(installed_plugin) | {"TOY_LOG": str(tmp_path / "toy.log"),
                                            "TOY_CPU_FAILS": "1"}
    done = run_cli(*args, env=env, cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT quality, error, note FROM results ORDER BY quality").fetchall()
    assert len(rows) == 4
    for quality, error, note in rows:
        if quality == 2:
            assert "encoding: ValueError: the CPU cannot either" in error, error
            assert note.startswith("device_fallback: out of memory on cuda"), note
        else:
            assert error is None and note is None, (quality, error, note)
    again = run_cli(*args, env=env, cwd=tmp_path)  # the 2 measured rows are kept
    assert re.search(r"^2 measured in .* 2 reused", again.stdout, re.M), again.stdout
