"""Known porting bugs, one family per module, each recomputed or fit in float64:
``linear`` (convolution and dense weights, padding), ``fits`` (LRN constants and pools,
fit from the data), ``elementwise`` (ReLU, softmax, flatten, dropout), ``shapes`` (causes
from shapes alone). ``crosscheck.hypotheses`` is the entry point the checks call."""
