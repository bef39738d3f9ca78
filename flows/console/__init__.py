"""The procbots console: people work the bots' exceptions in a browser (``procbots console``).

:mod:`flows.console.app` builds the FastAPI app, :mod:`flows.console.server` runs
it, :mod:`flows.console.workqueue` is its one door to the ledger and
:mod:`flows.console.auth` signs people in.
"""
