"""A small Django project logging with kakashi (see ``settings.py`` for the three lines that matter)."""
