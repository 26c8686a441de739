"""The `arranger` generator backend: rule-based, light, every note placed by music theory."""

from cuecast.models.music.arranger.generator import Arranger

__all__ = ["Arranger"]
