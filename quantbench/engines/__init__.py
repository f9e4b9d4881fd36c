"""The techniques, and the engines that make their variants."""
