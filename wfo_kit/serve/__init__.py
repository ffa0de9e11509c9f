"""``wfo serve``: a REST API over the run folders, the batch workers and the configuration model.

The web layer holds no valuation or run logic: submissions are resolved by
:func:`wfo_kit.config.resolve_config` in confinement to the server's data root, executed by
:func:`wfo_kit.batch.run_job` in warm worker processes (or on a Dask cluster), and read back from
the run folders (:class:`wfo_kit.serve.index.RunIndex` over the manifests).

Modules: ``app`` (the application factory and middleware), one router per resource (``runs``,
``results``, ``config``, ``history``, ``health``, ``docs``), ``auth`` (the current user and role
as dependencies), ``users`` (the users file and API tokens), ``problems`` (errors as RFC 9457
problem details), ``runqueue`` (the durable queue in the output folder, shared by servers, feeding
the worker pool), ``index`` (run folders read fast), ``submissions`` and ``uploads`` (documents
and data files received), ``cli`` (``wfo serve``, ``wfo users``).
Importing this package imports nothing heavy.
"""
