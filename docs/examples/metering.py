import httpx

import imagine_billing as ib
from imagine_billing.adapters.httpx import MeteredTransport


def fake_api(request: httpx.Request) -> httpx.Response:
    """Stands in for https://api.vyro.ai/v2, so that this example runs offline."""
    if b"slow" in request.content:
        raise httpx.ReadTimeout("no answer in time", request=request)
    if b"broke" in request.content:
        return httpx.Response(402, json={"status": "error", "code": 1101,
                                         "error": "PaymentRequired", "message": "no tokens"})
    return httpx.Response(200, content=b"\x89PNG...")


def form(prompt: str, style: str) -> dict[str, tuple[None, str]]:
    return {"prompt": (None, prompt), "style": (None, style)}


ledger = ib.Ledger.open("meter.db")
ledger.credit(30, key="top-up-1")
transport = MeteredTransport(ledger, inner=httpx.MockTransport(fake_api))
client = httpx.Client(transport=transport, base_url="https://api.vyro.ai/v2",
                      headers={"Authorization": "Bearer vk-..."})

# 1. A priced call: 15 tokens held, sent, answered 200, captured.
answer = client.post("/image/generations", files=form("a red fox", "flux-dev"),
                     headers={"Idempotency-Key": "fox-1"})
print(answer.status_code, ledger.balance())

# 2. The same key again: it succeeded, so it is not sent (nor billed) twice.
try:
    client.post("/image/generations", files=form("a red fox", "flux-dev"),
                headers={"Idempotency-Key": "fox-1"})
except ib.DuplicateRequest as error:
    print("not sent:", error)

# 3. The API says 402 (not enough tokens): the hold is voided and the drift noted.
answer = client.post("/image/generations", files=form("broke", "anime"))
print(answer.status_code, ledger.balance())

# 4. Sent, then the read timed out: the API may have billed it, so it is counted.
try:
    client.post("/image/generations", files=form("slow", "anime"))
except httpx.ReadTimeout:
    pass
for note in ledger.entries(tags={"outcome": "uncertain"}):
    print(note.tags["error"], note.tags["on_uncertain"], note.tags["hold"])

# 5. More than the ledger has: refused, nothing sent.
try:
    client.post("/image/generations", files=form("two foxes", "flux-dev"))
except ib.InsufficientTokens as error:
    print("not sent:", error)

print(transport.stats)
print(ledger.balance())
transport.close()
ledger.close()
