"""How fast the host reaches a node: exec latency, file transfer, output, soft reset."""

from __future__ import annotations

import os
import statistics
import time

from tinysense.node import Node


def _timed(fn, repeat: int) -> float:
    """Median seconds of `repeat` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_link(node: Node, size: int = 100_000, repeat: int = 5) -> dict[str, float]:
    """Measure the node link; returns {name: value} (seconds, or bytes per second).

    Args:
        node: a connected node.
        size: bytes for the file and output transfers.
        repeat: runs per measurement (the median is kept).
    """
    data = os.urandom(size)
    path = "/linkbench.bin"
    lines = size // 8  # "%7d\n" per line
    result = {
        "exec_s": _timed(lambda: node.exec("pass"), repeat * 10),
        "put_Bps": size / _timed(lambda: node.put(data, path), repeat),
        "get_Bps": size / _timed(lambda: node.get(path), repeat),
        "output_Bps": lines * 8 / _timed(
            lambda: node.exec(f"for i in range({lines}):\n print('%7d' % i)", timeout=60), repeat),
        "soft_reset_s": _timed(node.soft_reset, repeat),
    }
    if node.get(path) != data:
        raise AssertionError("linkbench: the file read back differs from what was written")
    node.remove(path)
    return result


def format_link(result: dict[str, float]) -> str:
    return "\n".join([
        f"exec round trip   {result['exec_s'] * 1000:8.2f} ms",
        f"put               {result['put_Bps'] / 1000:8.1f} KB/s",
        f"get               {result['get_Bps'] / 1000:8.1f} KB/s",
        f"printed output    {result['output_Bps'] / 1000:8.1f} KB/s",
        f"soft reset        {result['soft_reset_s'] * 1000:8.1f} ms",
    ])
