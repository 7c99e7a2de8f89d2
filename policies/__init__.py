"""Per-user policies: least privilege, enforced before anything reaches a node."""

from .engine import Decision, Denied, Policy, UserPolicy, validate_config

__all__ = ["Decision", "Denied", "Policy", "UserPolicy", "validate_config"]
