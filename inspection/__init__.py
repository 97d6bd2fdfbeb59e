"""``alexnet inspect``: check an AlexNet someone else wrote.

``target`` loads the model TARGET names, ``identify`` finds the variant from its layers with
weights, ``transfer`` moves canonical weights in and the model's own out, ``flatten`` finds
its flatten order, ``align`` lines its captured layer outputs up with the spec's layers,
``fingerprint`` checks each in isolation and names the convention a divergent one computes
(with the crosscheck's cause hypotheses), ``run`` does the steps in order, ``report`` prints
and writes, ``export`` writes the model's own weights in canonical form. The framework
adapters are in ``impls/<framework>/foreign.py``.
"""
