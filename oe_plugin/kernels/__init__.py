"""The one home of sweepsort's DSP and matching code (numba kernels shared online and offline)."""

from oe_plugin.kernels import cache_guard

cache_guard.check()
