"""Instance data: typed containers, loaders and validation."""
from .loader import load_instance
from .model import Economics, Instance, Limits, Network, Penalties, Profiles

__all__ = ["load_instance", "Instance", "Network", "Profiles", "Economics", "Limits", "Penalties"]
