"""cuecast: a real-time streaming soundtrack engine."""
__version__ = "0.1.0"
