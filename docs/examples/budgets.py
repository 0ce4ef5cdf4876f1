from datetime import UTC, datetime

import imagine_billing as ib

# A fixed clock, so that this example writes three weeks of history in one run.
now = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
with ib.Ledger.open("team.db", clock=lambda: now) as ledger:
    ledger.credit(3000, key="top-up-2026-11")
    ledger.add_budget(ib.Budget("shop", 1200, period="month",
                                scope={"project": "shop"}, hard=True))
    ledger.add_budget(ib.Budget("all", 2500, period="month"))
    for day in range(1, 21):  # 1 to 20 November, one batch a day for each project
        now = datetime(2026, 11, day, 10, 0, tzinfo=UTC)
        shop = ib.estimate([ib.Call("flux-dev", 3), ib.Call("anime", 1 + day % 4)])
        ledger.debit(shop, key=f"shop-{day}", tags={"project": "shop"})
        blog = ib.estimate([ib.Call("imagine-turbo", 20 + day)])
        ledger.debit(blog, key=f"blog-{day}", tags={"project": "blog"})

    now = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    print(ledger.balance())

    status = ib.budget_status(ledger, "shop", now=now)
    print(status.spent, status.remaining, [a.percent for a in status.actual],
          [a.percent for a in status.forecasted])

    try:  # 300 tokens would take the hard "shop" budget past its 1,200
        ledger.hold(ib.estimate([ib.Call("flux-dev", 20)]), key="shop-big",
                    tags={"project": "shop"})
    except ib.BudgetExceeded as error:
        print(error)

    fc = ib.forecast(ledger, now=now)
    print(fc.burn_per_day, f"{float(fc.low):.2f} to {float(fc.high):.2f}")
    print(fc.runway, fc.exhausted_at)

print(ib.plan(1000, {"flux-dev": 1, "imagine-turbo": 4}).counts)
print(ib.max_calls(1000, "flux-dev"))
