"""kerasbench: one Keras model, timed and checked under TensorFlow, JAX and PyTorch."""
