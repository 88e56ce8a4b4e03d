"""tierline: the US AI Diffusion framework and the EAR advanced-computing controls as explainable code."""

__version__ = "0.1.0"
