"""The ledger from asyncio code: each call runs in a worker thread, the loop never waits."""

import asyncio

import imagine_billing as ib


async def main() -> None:
    async with await ib.AsyncLedger.open("tokens.db") as ledger:  # or a postgresql:// URL
        await ledger.credit(100, key="top-up-1")
        hold = await ledger.hold(15, key="job-7")
        await ledger.capture(hold, 10)  # spends 10, releases the other 5
        print(await ledger.balance())
        # Ten jobs at once, 20 tokens each: the ledger grants what it has, refuses the rest.
        jobs = [ledger.hold(20, key=f"batch-{i}") for i in range(10)]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        granted = sum(isinstance(result, ib.Hold) for result in results)
        refused = sum(isinstance(result, ib.InsufficientTokens) for result in results)
        print(f"{granted} granted, {refused} refused")
        print(await ledger.balance())


asyncio.run(main())
