"""quantbench's version, here so that core/ (a study folder's marker) reads it without importing the package's top."""
__version__ = "0.1.0"
