"""Framework adapters for kakashi, installed as ``kakashi.integrations``.

Each adapter imports kakashi through its public API only and is imported on its own
(``kakashi.integrations.starlette`` and so on); this package imports no framework.
"""
