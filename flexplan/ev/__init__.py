"""EV fleets: charging sessions, per-cohort energy envelopes (docs/formulation.md §4)."""
from .envelopes import Cohort, FleetEnvelopes, build_envelopes, validate_sessions

__all__ = ["Cohort", "FleetEnvelopes", "build_envelopes", "validate_sessions"]
