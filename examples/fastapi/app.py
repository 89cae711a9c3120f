"""An orders API protected by Tollgate (FastAPI + uvicorn).

    pip install -e 'clients/python[fastapi]'
    python examples/fastapi/app.py            # http://127.0.0.1:8000 (PORT to change)

Tollgate is reached at $TOLLGATE_SERVER (default http://127.0.0.1:50051, `npm start`).
"""

import os

import uvicorn
from fastapi import FastAPI

from tollgate import route_options
from tollgate.asgi import TollgateMiddleware
from tollgate.fastapi import TollgateIdentity

app = FastAPI(title="orders")
app.add_middleware(TollgateMiddleware, skip=["/healthz"])


@app.get("/healthz")
async def healthz() -> dict[str, bool]:
    return {"ok": True}


@app.get("/v1/orders")
async def list_orders(tollgate: TollgateIdentity) -> dict[str, object]:
    # The caller, as Tollgate knows it (never the secret).
    return {"owner": tollgate.owner, "key_id": tollgate.key_id, "orders": []}


@app.post("/v1/orders")
@route_options(endpoint="create-order", scopes=["orders:write"])
async def create_order(tollgate: TollgateIdentity) -> dict[str, object]:
    return {"owner": tollgate.owner, "created": True}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
