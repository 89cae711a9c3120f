"""An orders API protected by Tollgate (Flask).

    pip install -e 'clients/python[flask]'
    python examples/flask/app.py              # http://127.0.0.1:8001 (PORT to change)

Tollgate is reached at $TOLLGATE_SERVER (default http://127.0.0.1:50051, `npm start`).
"""

import os

from flask import Flask, g

from tollgate import route_options
from tollgate.flask import Tollgate

app = Flask(__name__)
Tollgate(app, skip=["/healthz"])


@app.get("/healthz")
def healthz() -> dict[str, bool]:
    return {"ok": True}


@app.get("/v1/orders")
def list_orders() -> dict[str, object]:
    # The caller, as Tollgate knows it (never the secret).
    return {"owner": g.tollgate.owner, "key_id": g.tollgate.key_id, "orders": []}


@app.post("/v1/orders")
@route_options(endpoint="create-order", scopes=["orders:write"])
def create_order() -> dict[str, object]:
    return {"owner": g.tollgate.owner, "created": True}


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8001")))
