"""Planning above the ledger and the estimator: budgets, forecasts, plans, workload recosts."""

from imagine_billing.planner.budgets import Alert, Budget, BudgetStatus, budget_status
from imagine_billing.planner.forecasting import Forecast, forecast
from imagine_billing.planner.plans import Plan, max_calls, plan
from imagine_billing.planner.workloads import StyleImpact, WorkloadImpact, recost

__all__ = [
    "Alert",
    "Budget",
    "BudgetStatus",
    "Forecast",
    "Plan",
    "StyleImpact",
    "WorkloadImpact",
    "budget_status",
    "forecast",
    "max_calls",
    "plan",
    "recost",
]
