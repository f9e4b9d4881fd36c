"""Every output judged by its task, timing, and TFLite Micro."""
