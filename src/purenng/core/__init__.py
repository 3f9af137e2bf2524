"""purenng's core: interfaces and machinery, free of transports and protocols.

Nothing here imports from :mod:`purenng.transports` or
:mod:`purenng.protocols`; a test checks.
"""
