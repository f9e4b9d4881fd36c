"""Helpers every layer may use: errors, staged file writes, quiet, progress, machine, stats, memory."""
