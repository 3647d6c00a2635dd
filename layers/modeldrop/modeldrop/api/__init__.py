"""The REST API of modeldrop: routes (routes.py) → logic (logic.py) → adapters (records, runtime).

The Api function's handler is `functions/api/app.py`; the contract is `openapi/api.yaml`.
"""
