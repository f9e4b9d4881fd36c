"""What the user brings: model files, data files, .tflite inspection."""
