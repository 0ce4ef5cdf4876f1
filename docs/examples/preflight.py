from decimal import Decimal

import imagine_billing as ib

calls = [ib.Call("flux-dev", 4), ib.Call("anime")]

est = ib.estimate(calls)  # the bundled table; pass a PriceTable or a PriceBook to choose
print(est.total, est.table_version)
for line in est.lines:
    print(line.call.style, line.call.count, line.unit_cost, line.subtotal)

# Money only if you know what your tokens cost you (the API publishes no money price).
print(est.in_money(ib.TokenRate(1000, Decimal("10.00"), "USD")))

verdict = ib.preflight(calls, available=40)
print(verdict.ok, verdict.total, verdict.available, verdict.shortfall)

try:
    ib.estimate([ib.Call("flux-dv")])
except ib.UnknownStyleError as error:
    print(error.suggestions)

try:
    ib.estimate([ib.Call("sdxl-1.0")])
except ib.UnpricedError as error:
    print(error)

# A price the API does not publish: price it in a table of your own.
mine = ib.load_price_table().with_overrides({"styles": {"sdxl-1.0": {"cost": 2}}},
                                            version="1.0.1")
print(ib.estimate([ib.Call("sdxl-1.0", 10)], mine).total)
