"""``alexnet bench``: forward and forward+backward timed in each framework on the same
model, weights and batch, against the device's peak as measured by a matrix product.

``config`` (what to run), ``timing`` (the synchronized clock and its statistics),
``worker`` (one framework in its own process), ``run`` (the workers, FLOPs, ratios),
``report`` (the table, JSON and the bar chart).
"""
