"""The token ledger: holds, idempotent entries, a hash chain, in memory, SQLite or PostgreSQL."""

from imagine_billing.ledger._async import AsyncLedger
from imagine_billing.ledger._memory import MemoryStore
from imagine_billing.ledger.ledger import Clock, Ledger
from imagine_billing.ledger.model import Balance, Entry, Hold
from imagine_billing.ledger.store import Store, Tip

__all__ = ["AsyncLedger", "Balance", "Clock", "Entry", "Hold", "Ledger", "MemoryStore", "Store",
           "Tip"]
