"""qtap_fluent.agent: captured bytes -> Qtap transaction records. Knows nothing about Fluent.

Layers, each pure (bytes and a clock in, frozen events out) except where noted:

* ``events``      -- what a capture source hands the core (DataEvent, CloseEvent, LostEvent);
* ``sources``     -- the source interface, the pcap replay source and the live eBPF source
  (``agent.bpf``, another module's work), plus ``replay`` (pcap/pcapng + TCP reassembly);
* ``protocols``   -- detection from the first bytes, HTTP/1.x (httptools), HTTP/2 (hyperframe +
  hpack), bounded body collection and decoding; one ``events.py`` of protocol facts;
* ``tracker``     -- per-connection state, roles, gaps, idle eviction, memory bounds, counters;
* ``assembler``   -- pairs requests with responses into ``Exchange`` objects (timing, bytes,
  direction, 499 for the unanswered);
* ``policy`` / ``qtapconfig`` / ``build`` -- the Qtap YAML policy (direction, loopback,
  filters, endpoints, levels, rules, redaction) and the record at its level;
* ``runner`` / ``outputs`` / ``metrics`` / ``procinfo`` -- the I/O shell: the loop, stdout / file
  / forward outputs, the Prometheus endpoint, /proc lookups.

The record type itself is ``qtap_fluent.records.HttpTransaction``.
"""
