"""runlake's server side: gateway, event logs, fold, compactor, query service.

Imported only by server processes; the SDK (package ``runlake``) never needs it.
"""
