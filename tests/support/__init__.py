"""What the tests and the benchmarks share: fakes of external services, scratch stage stores
and generated input files.

``bench/`` imports from here and nowhere else in ``tests/``; tests never import ``bench/``
(except ``tests/chaos``, whose subject is ``bench.chaos``).
"""
