"""AlexNet in TensorFlow/Keras 3: a ``keras.Sequential`` (NHWC) with one layer per spec layer."""
