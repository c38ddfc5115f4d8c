"""roadx's top floor: the ``roadx`` command and everything that runs the line.

The only package that imports the stages (``producers``, ``streams``, ``sinks``); they and
``schemas`` never import it (ARCHITECTURE.md). Modules:

    cli.py           the ``roadx`` command: its parser and ``main``
    worker.py        the worker shell every long-running process starts through: logging,
                     metrics server, signals, exit statuses;  collector.py  its collector setting
    stack.py         the embedded stack (``roadx up``) and how commands find it
    broker.py        the embedded Kafka broker;  readiness.py  waiting for parts to answer
    demo.py          the national demo;  status.py  the live summary from scraped metrics
    scrape.py        reading a Prometheus endpoint
    consumer_lag.py  consumer lag: the gauge of a running consumer, a group's lag from outside
    topics.py, topicspec.py, topic_apply.py   the exchange's topics, their spec and its plan
    acl.py           the Kafka ACLs of provinces and hub principals
    errors.py        the errors of the package, and what commands and parts report

Sub-packages:

    commands/        one module per ``roadx`` subcommand (``add_parser`` and its handlers)
    bench/           ``roadx bench``: ceilings and stages measured in one run
    chaos/           ``roadx chaos``: kills and broker outages, then nothing lost or doubled

``cluster/`` (not a package) holds the compose file, Kubernetes manifests and monitoring.
"""
