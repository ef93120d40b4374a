"""Every workflow a worker must register."""

from workflows.canary_watch import CanaryWatchWorkflow
from workflows.follow_ups import FollowUpsWorkflow
from workflows.rollback import RollbackWorkflow

WORKFLOWS = (RollbackWorkflow, FollowUpsWorkflow, CanaryWatchWorkflow)
