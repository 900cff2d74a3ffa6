"""Tests of the speech layer (media/): Vosk, Piper, model registry."""
