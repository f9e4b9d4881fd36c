"""What runs a model: LiteRT (no TensorFlow), and the one door to TensorFlow."""
