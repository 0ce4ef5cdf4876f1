"""Planning above the estimator: what a workload costs as prices change."""

from imagine_billing.planner.workloads import StyleImpact, WorkloadImpact, recost

__all__ = ["StyleImpact", "WorkloadImpact", "recost"]
