"""EV fleets: charging sessions, per-cohort energy envelopes (FORMULATION.md §4)."""
from .envelopes import CohortEnvelopes, build_envelopes, validate_sessions

__all__ = ["CohortEnvelopes", "build_envelopes", "validate_sessions"]
