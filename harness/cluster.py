"""Running the measurements on a Dask cluster.

``harness run --scheduler tcp://HOST:PORT`` sends each measurement to the workers of
an existing ``dask.distributed`` cluster; ``--scheduler local:N`` starts a local cluster
of N worker processes. Results come back to the client, which writes them into its one
store as they arrive, exactly as a local run does. A worker that dies mid-task has its
tasks run again on another worker by the scheduler; a task that kills every worker it
runs on (three times) becomes an error row.

Workers read the images by path: on a multi-machine cluster the datasets must be
reachable at the same paths on every worker (a shared filesystem). Learned models are
loaded once per worker process and kept.

A trap: dask's nannies start workers with ``MALLOC_TRIM_THRESHOLD_=65536``, and setting
it turns off glibc's adaptive mmap threshold, so every large array is mmap'ed and
unmapped anew. Measured here, that made torch's allocations 6.5x and MS-SSIM 2.5x
slower in the workers. The local cluster sets both glibc thresholds high instead; start
the workers of a remote cluster with ``MALLOC_TRIM_THRESHOLD_`` and
``MALLOC_MMAP_THRESHOLD_`` set (e.g. 268435456) for the same reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from harness.errors import UsageError

SCHEMES = ("tcp", "tls", "ucx", "ws", "wss")  # dask.distributed's network protocols


def parse_scheduler(text: str) -> tuple[str, int | None]:
    """``local:N`` -> ("local", N); ``SCHEME://HOST:PORT`` -> (the address, None).

    Raises:
        UsageError: anything else, saying what is expected.
    """
    expected = (f"--scheduler {text!r}: expected local:N (N >= 1 worker processes) or"
                f" SCHEME://HOST:PORT of a Dask scheduler (SCHEME: {', '.join(SCHEMES)})")
    if text.startswith("local:"):
        count = text.split(":", 1)[1]
        if not count.isdigit() or int(count) < 1:
            raise UsageError(expected)
        return "local", int(count)
    scheme, sep, rest = text.partition("://")
    host, colon, port = rest.rpartition(":")
    if not (sep and scheme in SCHEMES and host and colon and port.isdigit()
            and 0 < int(port) < 65536):
        raise UsageError(expected)
    return text, None


def execute_on_dask(tasks: Sequence, scheduler: str, record: Callable, bar) -> None:
    from harness.runner import default_jobs, failed_row, measure

    try:
        from distributed import Client, LocalCluster, as_completed
        from distributed.scheduler import KilledWorker
    except ImportError as exc:
        raise UsageError("--scheduler needs dask.distributed: pip install"
                         " 'lic-harness[dask]'") from exc
    cluster = None
    address, workers = parse_scheduler(scheduler)
    if workers is not None:
        import dask

        threshold = 256 * 2**20  # bytes; see the module's docstring
        with dask.config.set({
                "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": threshold,
                "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": threshold}):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
        client = Client(cluster)
        torch_threads = max(1, default_jobs() // workers)
    else:
        try:
            client = Client(address, timeout=30)
        except OSError as exc:
            raise UsageError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
        torch_threads = 1
    try:
        bar.set_description(f"measuring (dask, {len(client.nthreads())} workers)")
        # A scheduler shares a result between all futures of one key: keys unique to this
        # run keep two runs on one cluster from receiving each other's measurements.
        run = uuid.uuid4().hex
        # the plan's order (longest first, one model's tasks together) as priorities
        futures = {client.submit(measure, task, torch_threads, pure=False,
                                 key=f"measure-{run}-{index}", priority=len(tasks) - index): task
                   for index, task in enumerate(tasks)}
        for future in as_completed(futures):
            task = futures[future]
            try:
                row = future.result()
            except KilledWorker as exc:
                row = failed_row(task, f"the task killed the Dask workers it ran on ({exc})")
            record(row)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
