"""The crosscheck: run every implementation on identical weights and inputs, compare
each layer with the float64 reference and with each other, and report."""
