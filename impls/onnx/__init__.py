"""ONNX witnesses: the PyTorch and Keras models exported by their own ONNX exporters and
run in onnxruntime, as forward-only implementations for the crosscheck (``WITNESSES`` in
``impls.base``).

- ``graph.py``: the exported graph with its weights, baked into an onnxruntime session;
- ``backend.py``: the forward-only ``Backend`` the crosscheck drives;
- ``from_pytorch.py``: ``torch.onnx.export`` of ``impls.pytorch`` (the ``onnx-pytorch`` witness);
- ``from_tensorflow.py``: tf2onnx of ``impls.tensorflow`` (the ``onnx-tensorflow`` witness).
"""
