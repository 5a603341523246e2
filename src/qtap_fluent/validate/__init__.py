"""``qtap-fluent validate``: load a deployment, run every registered rule, return problems.

* ``classify``: what a file is, from its content (and its name where content is ambiguous);
* ``deployment``: discover, read, classify and load the files (``Deployment``, which is also the
  ``FluentBitView`` the Fluent Bit checks read);
* ``compose`` / ``links``: compose services, mounts and log driver settings; which files of a
  deployment belong together;
* ``registry`` (every rule id, one place), ``declarations`` (ids loaders report), ``rules/``
  (compose schema, cross-file, security), ``engine`` (runs them; never prints).

The reporters live in ``qtap_fluent.cli.report``, the command in ``qtap_fluent.cli.cmd_validate``.
"""
