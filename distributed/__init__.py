"""Data-parallel training on each framework's own distributed engine (``impls/parallel.py``):
the local launcher (``launch``), the worker process (``worker``), the shards and
dropout streams of each rank (``shard``), and the steps the crosscheck's distributed
check runs in the workers (``steps``)."""
