"""Networks, training, inference and evaluation: everything that needs TensorFlow (loaded only when used)."""
