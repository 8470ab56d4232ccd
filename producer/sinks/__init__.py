"""Sinks: what follows the static catalog (see :mod:`producer.changes`).

Each sink lives in its own module and imports its optional dependencies
there, so ``import producer.sinks`` costs nothing:

- :mod:`producer.sinks.pgstac`: :class:`~producer.sinks.pgstac.PgstacSink`,
  a pgSTAC database kept in step (extra ``stac-producer[pgstac]``).
- :mod:`producer.sinks.notify`: change notifications: a Python callback
  (:class:`~producer.sinks.notify.CallbackSink`), Prefect events
  (:class:`~producer.sinks.notify.PrefectEventSink`) and Amazon SNS messages
  (:class:`~producer.sinks.notify.SnsSink`, needs boto3: ``[s3]``).
"""
