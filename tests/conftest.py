"""Shared pytest setup."""

import os

# Stimulus rendering tests draw offscreen through EGL: pyglet must know before anything imports
# pyglet.window (notes: headless-pyglet).
os.environ.setdefault("PYGLET_HEADLESS", "1")
