"""The portal's pages, one module per page; each has ``register(app, web)``.

:mod:`sandbox.app` registers them in order (exports before the detail pages whose
paths would otherwise match ``export.csv``).
"""
