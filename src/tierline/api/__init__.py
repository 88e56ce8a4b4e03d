"""The HTTP service (FastAPI): ``tierline serve``."""
