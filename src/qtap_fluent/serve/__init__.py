"""``qtap-fluent serve``: Python filters and outputs behind Fluent Bit's forward output.

``config`` (serve.yaml), ``match`` (Fluent Bit tag routing), ``plugins`` (the plugin API and
loader), ``filters`` (built-ins), ``pipeline`` (filters -> outputs, ack decision), ``metrics``
(Prometheus text) and ``runner`` (sockets, threads, signals).
"""
