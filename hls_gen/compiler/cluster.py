"""Dask distributed, the one executor for independent work: the demo's models and their
steps, a sweep's points.

`dask_client` gives a client on a running scheduler (``tcp://HOST:PORT``; on Slurm,
dask-jobqueue's ``SLURMCluster`` gives one), or on a new `LocalCluster` of
single-threaded worker processes, one per core by default. A task's log lines reach
the client as Dask events (`task_log` in the task, `forward_logs` around the client),
each as one line, so the lines of tasks that run side by side stay whole.
"""

import logging
from contextlib import contextmanager

from bitfab.hls_gen.errors import BitfabError

__all__ = ["ClusterError", "LOG_TOPIC", "dask_client", "task_log", "forward_logs"]

#: The Dask event topic tasks log on.
LOG_TOPIC = "bitfab-log"


class ClusterError(BitfabError):
    """No Dask cluster to run on: a scheduler that does not answer."""


@contextmanager
def dask_client(scheduler=None, workers=2):
    """A Dask client on `scheduler` (answering within seconds, else a `ClusterError`),
    or on a new `LocalCluster` of `workers` single-threaded worker processes, closed
    (the cluster too) on leaving."""
    from dask.distributed import Client, LocalCluster
    if scheduler:
        try:
            client = Client(scheduler, timeout="5s")
        except (OSError, TimeoutError) as error:
            raise ClusterError(f"the Dask scheduler at {scheduler} does not answer: "
                               f"{error}") from None
        with client:
            yield client
        return
    # Its workers' logs (a task failed, the others cancelled) are Dask's bookkeeping,
    # not the user's: the failure itself is raised here.
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.CRITICAL) as cluster, \
            Client(cluster) as client:
        yield client


def task_log(prefix=""):
    """A log function for a task: each line, after `prefix`, an event on `LOG_TOPIC`
    that `forward_logs` hands to the client's log; outside a Dask worker, `print`."""
    from distributed import get_worker
    try:
        worker = get_worker()
    except ValueError:
        return lambda text: print(f"{prefix}{text}")
    return lambda text: worker.log_event(LOG_TOPIC, f"{prefix}{text}")


@contextmanager
def forward_logs(client, log=print):
    """While inside, the lines tasks log (`task_log`) go to `log`, in the order the
    scheduler has them."""
    client.subscribe_topic(LOG_TOPIC, lambda event: log(event[1]))
    try:
        yield
    finally:
        client.unsubscribe_topic(LOG_TOPIC)
