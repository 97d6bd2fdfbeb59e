"""AlexNets written by others, in each framework, for alexnet inspect's tests."""
