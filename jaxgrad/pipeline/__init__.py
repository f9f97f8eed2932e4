"""Observer pipeline: measure metallicity gradients from cubes and line maps as the papers do."""
