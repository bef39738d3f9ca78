"""The procbots console: people work the bots' exceptions in a browser (``procbots console``).

:mod:`flows.console.app` builds the FastAPI app over the pages in
:mod:`flows.console.routes` (sign-in, queues, an item, reports and files) and the
templates in ``templates/``; :mod:`flows.console.server` runs it;
:mod:`flows.console.workqueue` is its one door to the ledger;
:mod:`flows.console.auth` signs people in; :mod:`flows.console.flowruns` finds an
item's Prefect flow run.
"""
