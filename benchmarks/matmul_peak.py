"""The machine's measured matmul peak, which the benchmarks' MFU figures divide by."""

import time


def matmul_peak_flops(size: int, dtype: str) -> float:
    """The best FLOP/s of a `size`-square matmul at `dtype` over 10 runs each with and
    without XLA: the peak whichever path a row takes (on CPUs oneDNN's bf16 matmul runs
    at about twice XLA's, and its fp32 one up to 1.4x)."""
    import tensorflow as tf

    a = tf.cast(tf.random.normal([size, size]), dtype)
    b = tf.cast(tf.random.normal([size, size]), dtype)
    best = float("inf")
    for jit_compile in (True, False):
        matmul = tf.function(lambda a, b: tf.matmul(a, b), jit_compile=jit_compile)
        matmul(a, b).numpy()
        for _ in range(10):
            start = time.perf_counter()
            matmul(a, b).numpy()
            best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best
