"""AlexNet in PyTorch: an ``nn.Sequential`` with one child per spec layer."""
