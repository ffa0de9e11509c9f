"""``wfo serve``: a REST API over the run folders, the batch workers and the configuration model.

The web layer holds no valuation or run logic: submissions are resolved by
:func:`wfo_kit.config.resolve_config` in confinement to the server's data root, executed by
:func:`wfo_kit.batch.run_job` in warm worker processes, and read back from the run folders
(:func:`wfo_kit.history.run_history`, :func:`wfo_kit.history.load_manifest`).

Modules: ``app`` (the application factory and middleware), one router per resource (``runs``,
``results``, ``config``, ``health``), ``auth`` (the current user and role as dependencies),
``users`` (the users file and API tokens), ``problems`` (errors as RFC 9457 problem details),
``runqueue`` (the bounded queue feeding the worker pool), ``cli`` (``wfo serve``, ``wfo users``).
Importing this package imports nothing heavy.
"""
