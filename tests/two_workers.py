"""Runs a command-line tool as a two-worker MultiWorkerMirroredStrategy cluster on loopback."""

import json
import os
import socket
import subprocess


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_two_workers(command: list[str], own_flags=((), ())) -> list[subprocess.Popen]:
    """`command` started twice, as workers 0 (the chief) and 1 of one TF_CONFIG cluster,
    each with its `own_flags` after the common ones."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config)}
        workers.append(subprocess.Popen([*command, *own_flags[index]], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True))
    return workers


def run_two_workers(command: list[str], timeout: float = 600) -> list[str]:
    """Both workers' output; asserts that both exit 0."""
    workers = start_two_workers(command)
    outputs = [worker.communicate(timeout=timeout)[0] for worker in workers]
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-3000:]
    return outputs
