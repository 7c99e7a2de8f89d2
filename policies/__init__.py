"""Per-user policies: least privilege, enforced before anything reaches a node.

The model and its merge rules are documented for reviewers in ``docs/policies.md``.
"""

from .engine import Confirmation, Decision, Denied, Policy, UserPolicy
from .store import PolicyStore, ReloadResult, load_policy
from .validate import config_warnings, validate_config

__all__ = [
    "Confirmation",
    "Decision",
    "Denied",
    "Policy",
    "PolicyStore",
    "ReloadResult",
    "UserPolicy",
    "config_warnings",
    "load_policy",
    "validate_config",
]
