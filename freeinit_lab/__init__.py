"""freeinit_lab: see and fix the initialization gap of video diffusion models."""

__version__ = "0.1.0"

# --- FreeInit engine (issue 3) ---
from freeinit_lab.layouts import LatentLayout, get_layout, register_layout  # noqa: E402
