"""Training and evaluation shared by the three frameworks (``alexnet train``)."""
