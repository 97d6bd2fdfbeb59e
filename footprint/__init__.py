"""Memory known before it is spent: each command's peak memory estimated from the spec
(``estimate``), and the measurements its constants come from (``calibration``).

Above ``common`` and ``impls`` (it reads the spec's shapes and which frameworks are
installed), below ``alexnet_cli`` and ``crosscheck/cli.py``, which refuse a run that
cannot fit before allocating anything. docs/memory.md says how.
"""
